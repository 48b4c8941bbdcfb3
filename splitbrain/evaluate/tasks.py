"""The linear probe, kNN and fine-tuning as tasks of the comparison engine (``compare``): how
each trains and scores one model, what its row holds and what its report's tables show.

    data = LabelledData.open("cifar10:~/data")
    task = ProbeTask(data, ProbeConfig(cache_features=True), {"data": "cifar10:~/data"})
    compare(task, ["runs/sb/weights.safetensors", "gaussian:paper"], "runs/probe")
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import Any

from torch import Tensor

from .. import __version__
from ..models import CONV_LAYERS, FC_LAYERS, SplitBrain
from ..weights import save
from .data import LabelledData
from .engine import Entry, Task, config_settings
from .features import describe_grids
from .finetune import FinetuneConfig, FinetuneResult, finetune
from .knn import KNNConfig, KNNResult, knn_evaluate
from .probe import ProbeConfig, ProbeResult, linear_probe
from .report import Table

log = logging.getLogger("splitbrain.evaluate")
#: What a report's columns of layers follow: network order.
LAYER_ORDER = (*CONV_LAYERS, *FC_LAYERS)
TEN_CROPS = "10 (corners and centre, each mirrored; mean logits)"
#: The per-class tables of multi-label results: (metric, the FinetuneResult field it shows).
PER_CLASS = (("AP (%)", "per_class_ap"), ("AP (11-point) (%)", "per_class_ap_11point"))


def in_network_order(per_model: list[list[str]]) -> list[str]:
    """Every layer any model was evaluated on, in network order."""
    present = {name for layers in per_model for name in layers}
    return [name for name in LAYER_ORDER if name in present]


def _settings(described: dict[str, Any], config: Any, classes: int) -> dict[str, Any]:
    return {**described, **config_settings(config), "classes": classes}


_DATA = ("data", "test_data", "max_items")


class ProbeTask(Task[ProbeResult]):
    """Linear probes on each model's frozen layers (``linear_probe``)."""

    command = "probe"
    title = "Linear probe"
    recipe = (*_DATA, "layers", "epochs", "lr", "batch_size", "momentum", "weight_decay",
              "lr_milestones", "lr_gamma", "cache_features", "crop", "resize", "stats_images",
              "target_dims", "seed", "precision")  # fmt: skip

    def __init__(self, data: LabelledData, config: ProbeConfig, described: dict[str, Any]):
        self.photos, self.config, self.described = data, config, described
        self.geometry = (config.crop, config.resize)

    def settings(self) -> dict[str, Any]:
        settings = _settings(self.described, self.config, self.photos.num_classes)
        return {"mode": self.config.mode, **settings}

    def evaluate(self, model: SplitBrain, entry: Entry) -> ProbeResult:
        return linear_probe(model, self.photos, self.config, entry.name)

    def record(self, row: ProbeResult) -> dict[str, Any]:
        record = asdict(row)
        record["grids"] = {k: list(v) for k, v in row.grids.items()}
        record["grids_described"] = describe_grids(row.grids)
        record["seconds"] = {k: round(v, 1) for k, v in row.seconds.items()}
        return record

    def restore(self, record: dict[str, Any]) -> ProbeResult:
        fields = {k: v for k, v in record.items() if k in ProbeResult.__dataclass_fields__}
        fields["grids"] = {k: tuple(v) for k, v in record["grids"].items()}
        return ProbeResult(**fields)

    def summary(self, row: ProbeResult) -> str:
        scores = ", ".join(f"{k} {v:.1f}" for k, v in row.top1.items())
        return f"{scores} ({row.seconds['total']:.0f} s)"

    def tables(self, rows: list[ProbeResult]) -> list[Table]:
        columns = in_network_order([list(r.top1) for r in rows])
        tables = [Table("top-1 (%)", columns, {r.name: r.top1 for r in rows})]
        if any(r.top5 for r in rows):
            tables.append(Table("top-5 (%)", columns, {r.name: r.top5 for r in rows}))
        return tables


class KNNTask(Task[KNNResult]):
    """Weighted kNN classification of each model's pooled frozen layers (``knn_evaluate``)."""

    command = "knn"
    title = "kNN classification"
    recipe = (*_DATA, "layers", "ks", "temperature", "crop", "resize", "precision")

    def __init__(self, data: LabelledData, config: KNNConfig, described: dict[str, Any]):
        self.photos, self.config, self.described = data, config, described
        self.geometry = (config.crop, config.resize)

    def settings(self) -> dict[str, Any]:
        settings = _settings(self.described, self.config, self.photos.num_classes)
        return {**settings, "features": "spatial average, unit length, cosine similarity"}

    def evaluate(self, model: SplitBrain, entry: Entry) -> KNNResult:
        return knn_evaluate(model, self.photos, self.config, entry.name)

    def record(self, row: KNNResult) -> dict[str, Any]:
        return asdict(row)

    def restore(self, record: dict[str, Any]) -> KNNResult:
        by_k = {kind: {int(k): v for k, v in record[kind].items()} for kind in ("top1", "top5")}
        return KNNResult(record["name"], by_k["top1"], by_k["top5"], record["train_items"],
                         record["test_items"])  # fmt: skip

    def summary(self, row: KNNResult) -> str:
        return "; ".join(
            f"k={k}: " + ", ".join(f"{n} {v:.1f}" for n, v in scores.items())
            for k, scores in row.top1.items()
        )

    def tables(self, rows: list[KNNResult]) -> list[Table]:
        ks = self.config.ks
        columns = in_network_order([list(r.top1[ks[0]]) for r in rows])
        tables = [Table(f"top-1 k={k} (%)", columns, {r.name: r.top1[k] for r in rows}) for k in ks]
        if any(r.top5 for r in rows):
            tables += [
                Table(f"top-5 k={k} (%)", columns, {r.name: r.top5[k] for r in rows}) for k in ks
            ]
        return tables

    def plotted(self, tables: list[Table]) -> list[Table]:
        return tables[: len(self.config.ks)]


class FinetuneTask(Task[FinetuneResult]):
    """Each model fine-tuned with a new linear head (``finetune``), saved in its folder.
    ``targets`` (train, test label matrices) make it multi-label, scored by mAP."""

    command = "finetune"
    title = "Fine-tuning"
    recipe = (*_DATA, "head_layer", "freeze_through", "epochs", "lr", "batch_size", "momentum",
              "weight_decay", "lr_milestones", "lr_gamma", "crop", "resize", "precision", "seed",
              "ten_crop")  # fmt: skip

    def __init__(
        self,
        data: LabelledData,
        config: FinetuneConfig,
        described: dict[str, Any],
        targets: tuple[Tensor, Tensor] | None = None,
    ):
        self.photos, self.config, self.described = data, config, described
        self.targets = targets
        self.geometry = (config.crop, config.resize)

    @property
    def trained(self) -> str:
        freeze = self.config.freeze_through
        return f"above {freeze}" if freeze else "all layers"

    def settings(self) -> dict[str, Any]:
        multilabel = self.targets is not None
        settings = {
            **_settings(self.described, self.config, self.photos.num_classes),
            "trained": self.trained,
            "task": "multi-label (mAP)" if multilabel else f"{self.photos.num_classes} classes",
            "test crops": TEN_CROPS if self.config.ten_crop else "the centre",
        }
        if multilabel:
            settings["average precision"] = (
                "area under the precision-recall curve (mAP) and VOC 2007's 11-point "
                "interpolation; a class without a positive test image has none (null, '-') "
                "and is left out of the mean"
            )
        return settings

    def evaluate(self, model: SplitBrain, entry: Entry) -> FinetuneResult:
        result = finetune(model, self.photos, self.config, entry.name, self.targets)
        resize, crop = model.geometry(self.config.crop, self.config.resize)
        provenance = {
            "fine-tuned from": entry.spec, **self.described,
            "geometry": {"preset": model.config.preset, "resize": resize, "crop": crop},
            "epochs": self.config.epochs, "head layer": result.head_layer,
            "trained": self.trained, "splitbrain": __version__,
        }  # fmt: skip
        log.info(
            "%s: fine-tuned weights %s", entry.name, save(result.model, entry.weights, provenance)
        )
        return result

    def record(self, row: FinetuneResult) -> dict[str, Any]:
        """Per-class APs by class name in percent, None for a class without a positive test
        image (JSON has no NaN)."""
        record = asdict(row)
        record.pop("model")
        record["seconds"] = {k: round(v, 1) for k, v in row.seconds.items()}
        for _, kind in PER_CLASS:
            record[kind] = _by_class(row.classes, getattr(row, kind))
        return record

    def restore(self, record: dict[str, Any]) -> FinetuneResult:
        fields = {k: v for k, v in record.items() if k in FinetuneResult.__dataclass_fields__}
        for _, kind in PER_CLASS:
            fields[kind] = [math.nan if ap is None else ap / 100 for ap in record[kind].values()]
        return FinetuneResult(**fields)

    def summary(self, row: FinetuneResult) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in row.scores.items())

    def tables(self, rows: list[FinetuneResult]) -> list[Table]:
        tables = [
            Table(
                f"{metric} (%)",
                sorted({r.head_layer for r in rows}),
                {r.name: {r.head_layer: r.scores[metric]} for r in rows},
            )
            for metric in rows[0].scores
        ]
        if self.targets is None:
            return tables
        for metric, kind in PER_CLASS:
            by_class = {r.name: _by_class(r.classes, getattr(r, kind)) for r in rows}
            tables.append(Table(metric, list(by_class[rows[0].name]), by_class))
        return tables


def _by_class(classes: list[str], aps: list[float]) -> dict[str, float | None]:
    """APs (fractions, NaN: no positive test image) in percent by class name, None for NaN;
    none for a single-label result."""
    if not aps:
        return {}
    return {c: None if math.isnan(ap) else 100.0 * ap for c, ap in zip(classes, aps, strict=True)}
