"""The Lightning side of pre-training: the task that wraps a model and its objective. The model
stays a plain ``torch.nn`` module."""

from __future__ import annotations

import lightning as L
import torch

from ..errors import NonFiniteError
from ..models import SplitBrain, training_flops_per_image
from ..objective import Objective
from ..runs.stream import sample_seed
from .config import TrainConfig

# One kernel for the whole Adam update (CPU support since torch 2.4).
FUSED_ADAM = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)


class PretrainTask(L.LightningModule):
    """The Lightning wrapper of a model and its objective: uint8 batches in, the loss out."""

    def __init__(
        self, model: SplitBrain, config: TrainConfig, total_steps: int, objective: Objective
    ) -> None:
        super().__init__()
        # NHWC is what oneDNN and cuDNN convolutions are fastest on (1.5x here on CPU).
        self.model = model.to(memory_format=torch.channels_last)
        self.config = config
        self.total_steps = total_steps
        self.objective = objective
        self.last_finite: tuple[int, dict[str, torch.Tensor]] | None = None

    def on_fit_start(self) -> None:
        """Train mode (models are built and loaded in eval mode), rebalancing weights on the
        training device, and the model FLOPs per device batch for the throughput monitor."""
        self.model.train()
        rebalance = self.objective.rebalance
        self.objective.rebalance = {k: w.to(self.device) for k, w in rebalance.items()}
        per_image = training_flops_per_image(self.model.config, self.config.crop)
        self.flops_per_batch = per_image * self.config.batch_size // self.trainer.world_size

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, _ = batch
        if images.shape[0] == 0:  # every item of the batch proved unreadable: skip the step
            return None
        raw, valid = self.model.split.space.decode_batch(images)
        raw = raw.contiguous(memory_format=torch.channels_last)
        # Randomness inside the step (input dropout) is a function of seed and step, so a
        # resumed run draws what the uninterrupted run would have drawn.
        with torch.random.fork_rng(devices=[raw.device] if raw.is_cuda else []):
            torch.manual_seed(sample_seed(self.config.seed + 1, self.global_step))
            loss, logs = self.objective(self.model, raw, valid)
        if not bool(torch.isfinite(loss)):  # one sync per step, as the progress bar's
            raise NonFiniteError(self._non_finite(logs))
        self.last_finite = (self.global_step, logs)
        self.log("loss", loss, prog_bar=True, sync_dist=False)
        self.log_dict({f"train/{k}": v for k, v in logs.items() if k != "loss"})
        return loss

    def _non_finite(self, logs: dict[str, torch.Tensor]) -> str:
        """Which loss head went non-finite at this step, and its last finite value."""
        heads = [k for k in logs if k.endswith("/loss") or k == "loss"]
        head = next(k for k in heads if not bool(torch.isfinite(logs[k])))
        value = float(logs[head])
        if self.last_finite is None:
            before = "no finite value before it in this sitting"
        else:
            step, previous = self.last_finite
            before = f"last finite value {float(previous[head]):.4g} at step {step}"
        return (
            f"step {self.global_step}: loss {head} is {value} ({before}); stopped, the "
            "checkpoints before this step are intact and no weights were written"
        )

    def configure_optimizers(self):
        c = self.config
        optimiser = torch.optim.Adam(
            self.model.parameters(),
            lr=c.lr,
            betas=c.betas,
            weight_decay=c.weight_decay,
            fused=FUSED_ADAM,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: c.lr_factor(step, self.total_steps)
        )
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
