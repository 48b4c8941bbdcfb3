"""What a pre-training run depends on: ``TrainConfig``, saved as config.yaml in the run folder."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import yaml

from ..device import default_precision, device_for
from ..init import INITS
from ..models import input_geometry
from ..splits import get_split

log = logging.getLogger("splitbrain.train")

# The ECCV16 AlexNet recipe (SPEC section 4): lr steps at 240k, 300k, 400k of 450k iterations.
LR_MILESTONES = (240 / 450, 300 / 450, 400 / 450)
LR_FACTORS = (1.0, 1 / 3, 1 / 10, 1 / 30)  # 3e-5 -> 1e-5 -> 3e-6 -> 1e-6
DEFAULT_LR = {"paper": 3e-5, "transfer": 3e-5, "caffe": 3e-5, "small": 1e-3}
#: Settings that change the model or the sample stream: a run folder holding another value is
#: not resumed (the resumed run would not be the run it continues). ``steps``/``epochs`` are
#: judged by ``check_length``; every other setting may change between sittings.
RECIPE_KEYS = (
    "data", "variant", "split", "preset", "width", "bn_affine", "init", "batch_size", "crop",
    "resize", "resize_max", "seed", "lr", "weight_decay", "betas", "lr_milestones", "lr_factors",
    "soft_targets", "rebalance", "precision", "max_items", "init_from", "intrinsics",
)  # fmt: skip
#: Written to config.yaml for the record, never compared.
UNCOMPARED = ("out", "precision_reason", "steps", "epochs", "total_steps")


@dataclass
class TrainConfig:
    """Everything a pre-training run depends on; saved as config.yaml in the run directory.

    ``rebalance``: the ECCV16 class rebalancing of classification targets, the mix of the
    empirical bin prior with uniform (0.5 in ECCV16); None for plain cross-entropy (the
    split-brain paper's choice).
    """

    data: str = "skimage:"
    out: str = "runs/splitbrain"
    variant: str = "splitbrain"
    preset: str = "paper"
    split: str = "lab"
    width: float = 1.0
    bn_affine: bool = False
    init: str = "gaussian"
    init_from: str | None = None  # a weights file to start from
    epochs: float | None = None
    steps: int | None = None
    batch_size: int = 80
    lr: float | None = None
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    lr_milestones: tuple[float, ...] = LR_MILESTONES
    lr_factors: tuple[float, ...] = LR_FACTORS
    soft_targets: bool = False
    rebalance: float | None = None
    crop: int | None = None
    resize: int | None = None
    resize_max: int | None = None  # scale jittering: each image's shorter side in resize..this
    accelerator: str = "auto"
    devices: int | str = "auto"
    nodes: int = 1
    precision: str | None = None  # None: bf16-mixed where the device has native bf16, else fp32
    precision_reason: str = ""  # why ``precision`` is what it is (set when it was None)
    sync_batchnorm: bool = False
    workers: int = 2
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    probe_every: int | None = None
    probe_data: str | None = None
    log_every: int = 10
    max_bad_fraction: float = 0.01
    max_items: int | None = None  # an evenly spread subset of the data, for quick trials
    intrinsics: tuple[float, float, float, float] | None = None  # RGB-D camera FX,FY,CX,CY
    download: bool = False
    progress: bool = True
    requeue: bool = False  # under SLURM, requeue the job when a stop signal interrupts the run

    def __post_init__(self) -> None:
        self.resize, self.crop = input_geometry(self.preset, self.crop, self.resize)
        self.lr = self.lr or DEFAULT_LR[self.preset]
        known = self.accelerator in ("auto", "cpu", "gpu", "cuda")
        device = device_for(self.accelerator, "accelerator") if known else None  # fail early
        if self.precision is None and device is not None:
            self.precision, self.precision_reason = default_precision(device)
        elif not self.precision_reason:
            self.precision_reason = "asked for"
        if self.resize_max is not None and self.resize_max < self.resize:
            raise ValueError(f"resize_max {self.resize_max} is below resize {self.resize}")
        if self.resize_max is not None and get_split(self.split).space.data == "rgbd":
            # RGB-D frames are resized once, when their HHA is cached: a jitter drawn there
            # would be one fixed scale per frame, not scale jittering.
            raise ValueError("resize_max is for images and channel stacks, not RGB-D frames")
        if self.init not in INITS:
            raise ValueError(f"init {self.init!r}: expected one of {', '.join(INITS)}")
        if len(self.lr_factors) != len(self.lr_milestones) + 1:
            raise ValueError("need one more learning-rate factor than milestones")
        if self.rebalance is not None and not 0 < self.rebalance <= 1:
            raise ValueError(
                f"rebalance mixes the prior with uniform: 0 < mix <= 1, got {self.rebalance}"
            )

    def to_dict(self) -> dict:
        """The settings as config.yaml holds them (tuples as lists)."""
        data = dataclasses.asdict(self)
        data["betas"], data["lr_milestones"] = list(self.betas), list(self.lr_milestones)
        data["lr_factors"] = list(self.lr_factors)
        if self.intrinsics is not None:
            data["intrinsics"] = list(self.intrinsics)
        return data

    def to_yaml(self, total_steps: int | None = None) -> str:
        data = self.to_dict()
        if total_steps is not None:
            data["total_steps"] = total_steps
        return yaml.safe_dump(data, sort_keys=False)

    def provenance(self, total_steps: int) -> dict:
        """What a weights file of this run records about how it was made."""
        from .. import __version__

        subset = {"subset": f"{self.max_items:,} items, evenly spread"} if self.max_items else {}
        geometry = {"preset": self.preset, "resize": self.resize, "crop": self.crop}
        if self.resize_max:
            geometry["resize_max"] = self.resize_max
        return {
            "data": self.data, **subset, "geometry": geometry, "steps": total_steps,
            "batch size": self.batch_size,
            "precision": self.precision, "initialisation": self.init_from or self.init,
            "seed": self.seed, "splitbrain": __version__,
        }  # fmt: skip

    def total_steps(self, num_items: int) -> int:
        """Optimiser steps of the whole run: ``steps``, else ``epochs`` (default 1) of the data."""
        if self.steps:
            return self.steps
        epochs = self.epochs if self.epochs is not None else 1.0
        return max(1, math.ceil(epochs * num_items / self.batch_size))

    def lr_factor(self, step: int, total_steps: int) -> float:
        """The learning-rate multiplier at ``step``: the recipe's steps at fractions of the run."""
        milestones = [round(m * total_steps) for m in self.lr_milestones]
        return self.lr_factors[sum(step >= m for m in milestones)]
