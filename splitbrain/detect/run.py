"""Detection as a task of the comparison engine (``evaluate.engine``): several models, one
after another, in one run folder, one table.

Per model, ``models/NAME/`` holds its checkpoints while its detector trains (an interrupted
model resumes from them), then its detector (``NAME.safetensors``) and scores
(``result.json``). Beside the report (``detect.{json,md,png}``) go each category's AP50 per
model (``detect_ap.png``) and scored images with the true boxes and every model's
(``detect_frames.png``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import __version__
from ..data.boxes import BoxSource
from ..evaluate import Table
from ..evaluate.data import ScoredData
from ..evaluate.engine import Entry, Task, config_settings
from ..models import SplitBrain
from ..weights import load, save
from .pictures import ap_picture, boxes_picture
from .predict import detect_photo
from .train import FROZEN_THROUGH, DetectConfig, DetectResult, data_anchors, train_detector

log = logging.getLogger("splitbrain.detect")

#: Settings that make a different run: a folder made with other values is not resumed.
RECIPE = (
    "data", "test_data", "hold_out", "max_items", "freeze_through", "side", "side_max",
    "epochs", "batch_size", "lr", "momentum", "weight_decay", "lr_milestones", "lr_gamma",
    "seed", "precision",
)  # fmt: skip
IMAGES_SHOWN = 3
COLUMNS = ("AP50", "AP", "AP75", "VOC07 AP50")


class DetectionTask(Task[DetectResult]):
    """Train a detector on each model with ``data``'s training images and score it on its
    scored images. ``described``: what the data is, for the settings."""

    command = "detect"
    recipe = RECIPE
    geometry = None  # images of the task's own size; baselines keep their preset's geometry

    def __init__(self, data: ScoredData, config: DetectConfig, described: dict[str, Any]):
        self.data, self.config, self.described = data, config, described
        self.title = f"Object detection, scored on {data.scored()}"
        self.photos = data.photos()
        train: BoxSource = data.train
        self.anchors = data_anchors(train, data.train_log.good_indices(), config.side)
        mode = (
            "frozen (the trunk through conv5 fixed; proposals and the fc6/fc7 box head train)"
            if config.freeze_through == FROZEN_THROUGH
            else f"fine-tuned above {config.freeze_through}"
            if config.freeze_through
            else "fine-tuned, every layer"
        )
        log.info(
            "detector %s; images at shorter side %d (training: %d-%d, mirrored half the time); "
            "anchors %s px, from the training objects' sizes",
            mode, config.side, config.side, config.side_max, ", ".join(map(str, self.anchors)),
        )  # fmt: skip

    def settings(self) -> dict[str, Any]:
        return {**self.described, **config_settings(self.config)}

    def evaluate(self, model: SplitBrain, entry: Entry) -> DetectResult:
        config, data = self.config, self.data
        result = train_detector(
            model, data.train, data.train_log, data.test, data.test_indices, self.anchors,
            config, entry.folder, entry.name,
        )  # fmt: skip
        trunk = dict(model.provenance)
        provenance = {
            "detected from": entry.spec,
            "data": data.train.spec,
            "detect": {
                "side": config.side,
                "epochs": config.epochs,
                "trained": f"above {config.freeze_through}" if config.freeze_through else "all",
            },
            "scored on": data.scored(),
            **({"trial": self.described["subset"]} if "subset" in self.described else {}),
            "classes": list(data.train.classes),
            "scores": result.scores.summary(),
            "splitbrain": __version__,
            **{k: trunk[k] for k in ("geometry", "decoding") if k in trunk},
            "trunk": trunk,
        }
        save(result.model, entry.weights, provenance)
        return result

    def record(self, row: DetectResult) -> dict[str, Any]:
        return row.to_dict()

    def restore(self, record: dict[str, Any]) -> DetectResult:
        return DetectResult.from_dict(record)

    def summary(self, row: DetectResult) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in row.scores.summary().items())

    def tables(self, rows: list[DetectResult]) -> list[Table]:
        scores = Table("AP (%)", list(COLUMNS), {r.name: r.scores.summary() for r in rows})
        classes = self.data.train.classes
        per_class = Table(
            "AP50 of each category (%)",
            classes,
            {r.name: dict(zip(classes, r.scores.category_ap50, strict=True)) for r in rows},
        )
        return [scores, per_class]

    def pictures_files(self) -> dict[str, str]:
        return {"ap": "detect_ap.png", "frames": "detect_frames.png"}

    def pictures(
        self, out: Path, rows: list[DetectResult], entries: list[Entry]
    ) -> dict[str, Path]:
        """AP50 per category and model, and scored images with the true and found boxes."""
        data, files = self.data, self.pictures_files()
        classes = list(data.train.classes)
        paths = {
            "ap": ap_picture(
                {r.name: r.scores.category_ap50 for r in rows},
                classes,
                out / files["ap"],
                f"AP50 per category, {data.test.format} {data.test.split}",
            )  # fmt: skip
        }
        shown = data.shown(IMAGES_SHOWN)
        photos = [data.test[i] for i in shown]
        truths = [data.test.boxes(i) for i in shown]
        found = {}
        for entry in entries:
            model = load(entry.weights)
            found[entry.name] = [detect_photo(model, photo) for photo in photos]
        paths["frames"] = boxes_picture(photos, truths, found, classes, out / files["frames"])
        return paths
