"""Segmentation as a task of the comparison engine (``evaluate.engine``): several models,
one after another, in one run folder, one table.

Per model, ``models/NAME/`` holds its checkpoints while its heads train (an interrupted model
resumes from them), then its segmenter (``NAME.safetensors``) and scores (``result.json``).
Beside the report (``segment.{json,md,png}``) go per-class IoU bars (``segment_iou.png``) and
frames of the scoring split with every model's prediction (``segment_frames.png``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import __version__
from ..evaluate import Table, batchnorm_from
from ..evaluate.data import ScoredData
from ..evaluate.engine import Entry, Task, config_settings
from ..evaluate.report import class_bars
from ..models import SplitBrain
from ..weights import load, save
from .pictures import predictions_picture
from .predict import segment_photo
from .train import SegmentConfig, SegmentResult, class_weights, train_segmenter

log = logging.getLogger("splitbrain.segment")

#: Settings that make a different run: a folder made with other values is not resumed.
RECIPE = (
    "data", "test_data", "hold_out", "max_items", "head", "layers", "freeze_through",
    "resize", "resize_max", "crop", "epochs", "batch_size", "lr", "momentum", "weight_decay",
    "lr_milestones", "lr_gamma", "class_weights", "bn_stats", "seed", "precision",
)  # fmt: skip
FRAMES_SHOWN = 3


class SegmentationTask(Task[SegmentResult]):
    """Train ``config``'s heads on each model with ``data``'s training frames and score them
    on its scoring frames. ``described``: what the data is, for the settings (``data``,
    ``test_data``, ``hold_out``, ``max_items``...)."""

    command = "segment"
    recipe = RECIPE
    geometry = None  # frames of the task's own size; baselines keep their preset's geometry

    def __init__(self, data: ScoredData, config: SegmentConfig, described: dict[str, Any]):
        self.data, self.config, self.described = data, config, described
        self.title = f"Semantic segmentation, scored on {data.scored()}"
        self.photos = data.photos()
        self.weights = class_weights(
            data.train, data.train_log.good_indices(), config.class_weights
        )
        log.info(
            "frames at shorter side %d for scoring; training crops %dx%d from frames at shorter "
            "side %d-%d, mirrored half the time", config.resize, config.crop, config.crop,
            config.resize, config.resize_max,
        )  # fmt: skip
        if self.weights is not None:
            listing = ", ".join(
                f"{c} {w:.3f}" + (" (no pixel in the training frames)" if w == 0 else "")
                for c, w in zip(data.train.classes, self.weights.tolist(), strict=True)
            )
            log.info("class weights (%s): %s", config.class_weights, listing)
        if len(config.columns()) > 1:
            log.info(
                "training %d heads side by side (%s); the loss shown is their mean",
                len(config.columns()), ", ".join(config.columns()),
            )  # fmt: skip

    def settings(self) -> dict[str, Any]:
        settings = {**self.described, **config_settings(self.config)}
        if self.config.bn_stats == "weights":  # as folders made before the option hold it
            settings.pop("bn_stats")
        return settings

    def evaluate(self, model: SplitBrain, entry: Entry) -> SegmentResult:
        config, data = self.config, self.data
        if config.bn_stats == "target":  # at the crops its head trains on
            batchnorm_from(model, self.photos, config.seed, config.crop, config.resize)
        result = train_segmenter(
            model, data.train, data.train_log, data.test, data.test_indices, config,
            entry.folder, entry.name, self.weights,
        )  # fmt: skip
        trunk = dict(model.provenance)
        provenance = {
            "segmented from": entry.spec,
            "data": data.train.spec,
            "segment": {
                "head": config.head,
                "resize": config.resize,
                "crop": config.crop,
                "epochs": config.epochs,
                "trained": _trained(config),
            },
            "scored on": data.scored(),
            **({"trial": self.described["subset"]} if "subset" in self.described else {}),
            "classes": list(data.train.classes),
            "palette": data.train.palette.tolist(),
            "scores": result.scores[config.columns()[-1]].summary(),
            "splitbrain": __version__,
            **{k: trunk[k] for k in ("geometry", "decoding") if k in trunk},
            "trunk": trunk,
        }
        save(result.model, entry.weights, provenance)
        return result

    def record(self, row: SegmentResult) -> dict[str, Any]:
        return row.to_dict()

    def restore(self, record: dict[str, Any]) -> SegmentResult:
        return SegmentResult.from_dict(record)

    def summary(self, row: SegmentResult) -> str:
        summary = row.scores[self.config.columns()[-1]].summary()
        return ", ".join(f"{k} {v:.1f}" for k, v in summary.items())

    def tables(self, rows: list[SegmentResult]) -> list[Table]:
        columns = self.config.columns()
        main = columns[-1]
        tables = [
            Table(
                f"{metric} (%)",
                columns,
                {r.name: {c: r.scores[c].summary()[metric] for c in columns} for r in rows},
            )
            for metric in ("mIoU", "pixel acc", "class acc")
        ]
        classes = self.data.train.classes
        per_class = Table(
            f"IoU of each class, {main} (%)",
            classes,
            {r.name: dict(zip(classes, r.scores[main].iou, strict=True)) for r in rows},
        )
        return [*tables, per_class]

    def pictures_files(self) -> dict[str, str]:
        return {"iou": "segment_iou.png", "frames": "segment_frames.png"}

    def pictures(
        self, out: Path, rows: list[SegmentResult], entries: list[Entry]
    ) -> dict[str, Path]:
        """Per-class IoU bars, and frames with every model's prediction."""
        data, main = self.data, self.config.columns()[-1]
        ious = {r.name: r.scores[main].iou for r in rows}
        paths = {
            "iou": class_bars(
                ious,
                data.train.classes,
                out / self.pictures_files()["iou"],
                f"IoU per class, {data.test.format} {data.test.split} ({main})",
                "IoU (%)",
            )  # fmt: skip
        }
        photos, truths = [], []
        for i in data.shown(FRAMES_SHOWN):
            frame, _, _ = data.test.load_with_note(i)
            photos.append(frame[..., :3])
            truths.append(frame[..., 3])
        predictions = {}
        for entry in entries:
            model = load(entry.weights)
            predictions[entry.name] = [segment_photo(model, p, self.config.resize) for p in photos]
        paths["frames"] = predictions_picture(
            photos, truths, predictions, data.train.palette, data.train.classes,
            out / self.pictures_files()["frames"],
        )  # fmt: skip
        return paths


def _trained(config: SegmentConfig) -> str:
    if config.head == "hypercolumn":
        return "the head only (the trunk frozen)"
    return f"above {config.freeze_through}" if config.freeze_through else "all layers"
