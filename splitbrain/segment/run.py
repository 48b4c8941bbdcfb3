"""A segmentation run: several models, one after another, in one folder, one table.

The folder holds ``config.yaml`` (the settings; a resume with other recipe settings is
refused, as in pre-training), ``run.lock`` while it runs, and per model ``models/NAME/``:
``model.txt`` (the model it was made from), its checkpoints while it trains, then its
segmenter (``NAME.safetensors``) and scores (``result.json``). Running the command again skips
the models done, resumes the one that was interrupted, and rewrites the report
(``segment.{json,md,png}``, ``segment_iou.png``, ``segment_frames.png``, the models the command
names) after every model. The same command with more models adds their rows and keeps the rows
done: each model is seeded on its own, so its result does not depend on the others in the run.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .. import __version__
from ..atomic import atomic_write
from ..data import BadImageLog, scan_source
from ..data.masks import MaskSource
from ..evaluate import LabelledData, Table, batchnorm_from, open_model, write_report
from ..evaluate.baselines import split_name
from ..models import SplitBrain
from ..progress import SUMMARY
from ..runs.checkpoints import checkpoints
from ..runs.folder import run_folder_faults
from ..runs.lock import RunLock
from ..runs.recipe import RecipeError, check_recipe, saved_settings
from ..weights import load, save
from .pictures import iou_picture, predictions_picture
from .predict import segment_photo
from .train import SegmentConfig, SegmentResult, class_weights, train_segmenter

log = logging.getLogger("splitbrain.segment")

#: Settings that make a different run: a folder made with other values is not resumed.
RECIPE = (
    "data", "test_data", "hold_out", "max_items", "preset", "head", "layers", "freeze_through",
    "resize", "resize_max", "crop", "epochs", "batch_size", "lr", "momentum", "weight_decay",
    "lr_milestones", "lr_gamma", "class_weights", "bn_stats", "seed", "precision",
)  # fmt: skip
FRAMES_SHOWN = 3
#: The model a folder ``models/NAME/`` was trained from (its spec without NAME=).
MODEL_RECORD = "model.txt"


@dataclass
class SegmentData:
    """The training and scoring frames, scanned once: bad pairs named, counted, left out."""

    train: MaskSource
    test: MaskSource
    train_log: BadImageLog
    test_indices: np.ndarray

    @classmethod
    def scan(
        cls, train: MaskSource, test: MaskSource, max_bad_fraction: float, progress: bool
    ) -> SegmentData:
        if train.classes != test.classes:
            raise ValueError(
                f"{train.spec} has classes {', '.join(train.classes)}; {test.spec} has "
                f"{', '.join(test.classes)}: score on data with the same classes"
            )
        train_log = scan_source(train, max_bad_fraction, progress=progress)
        test_log = scan_source(test, max_bad_fraction, progress=progress)
        return cls(train, test, train_log, test_log.good_indices())

    def photos(self) -> LabelledData:
        """The photographs alone, for the baselines' initialisation."""
        return LabelledData(self.train.photos(), self.test.photos(), progress=False, labelled=False)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def _frames_shown(data: SegmentData) -> list[int]:
    indices = data.test_indices
    picks = np.linspace(0, len(indices) - 1, min(FRAMES_SHOWN, len(indices))).round()
    return [int(indices[int(k)]) for k in picks]


def write_segment_report(
    out: Path, data: SegmentData, config: SegmentConfig, settings: dict,
    results: list[SegmentResult], weights: dict[str, Path],
) -> dict[str, Path]:  # fmt: skip
    """segment.{json,md,png}, per-class IoU bars and frames with every model's prediction."""
    columns = config.columns()
    main = columns[-1]
    tables = [
        Table(
            f"{metric} (%)",
            columns,
            {r.name: {c: r.scores[c].summary()[metric] for c in columns} for r in results},
        )
        for metric in ("mIoU", "pixel acc", "class acc")
    ]
    classes = data.train.classes
    per_class = Table(
        f"IoU of each class, {main} (%)",
        classes,
        {r.name: dict(zip(classes, r.scores[main].iou, strict=True)) for r in results},
    )
    meta = {
        "command": "segment",
        "settings": settings,
        "models": [{**r.to_dict(), "weights": str(weights[r.name])} for r in results],
    }
    paths = write_report(
        out, "segment", "Semantic segmentation", [*tables, per_class], meta, tables[:1]
    )
    ious = {r.name: r.scores[main].iou for r in results}
    paths["iou"] = iou_picture(
        ious,
        classes,
        out / "segment_iou.png",
        f"IoU per class, {data.test.format} {data.test.split} ({main})",
    )
    shown = _frames_shown(data)
    photos, truths = [], []
    for i in shown:
        frame, _, _ = data.test.load_with_note(i)
        photos.append(frame[..., :3])
        truths.append(frame[..., 3])
    predictions = {}
    for result in results:
        model = load(weights[result.name])
        predictions[result.name] = [segment_photo(model, p, config.resize) for p in photos]
    paths["frames"] = predictions_picture(
        photos, truths, predictions, data.train.palette, classes, out / "segment_frames.png"
    )
    return paths


#: What an earlier run left in a folder that ``--overwrite`` starts again.
RUN_FILES = ("models", "config.yaml", "segment.json", "segment.md", "segment.png",
             "segment_iou.png", "segment_frames.png")  # fmt: skip


def finished(folder: Path, specs: Iterable[str] = ()) -> bool:
    """Whether ``folder`` holds a segmentation run that scored every model it was asked for
    and every model of ``specs`` (a command that names a model the folder lacks adds it)."""
    config = folder / "config.yaml"
    if not config.exists():
        return False
    names = [split_name(s)[0] for s in [*yaml.safe_load(config.read_text())["weights"], *specs]]
    return all((folder / "models" / _safe(n) / "result.json").exists() for n in names)


def _check_models(out: Path, specs: list[str]) -> None:
    """Refuse a name whose folder in ``out`` holds another model (RecipeError): its row there
    was made from that model, not from this command's."""
    listed = dict(map(split_name, (saved_settings(out) or {}).get("weights", [])))
    added = []
    for name, spec in map(split_name, specs):
        folder = out / "models" / _safe(name)
        if not folder.is_dir():
            added.append(name)
            continue
        record = folder / MODEL_RECORD  # folders written before it: the config's list
        made_from = record.read_text() if record.exists() else listed.get(name, spec)
        if made_from != spec:
            raise RecipeError(
                f"{out} holds a model named {name} made from {made_from}, not {spec}: "
                "give this one another NAME= or choose a new --out"
            )
    if added:
        log.info("%s: adding %s to its table", out, ", ".join(added))


def _start_again(out: Path) -> None:
    for name in RUN_FILES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def segment_models(
    specs: list[str],
    data: SegmentData,
    config: SegmentConfig,
    out: Path,
    settings: dict,
    open_spec: Callable[[str, LabelledData], tuple[str, SplitBrain]] = open_model,
    report: Callable[[dict[str, Path]], None] | None = None,
    overwrite: bool = False,
) -> list[SegmentResult]:
    """Train and score a segmenter on each model of ``specs`` (weights files or baselines,
    ``NAME=SPEC``) in ``out``, resuming what an earlier run of the same command left
    (``overwrite``: starting again from nothing)."""
    with run_folder_faults(out), RunLock(out):
        if overwrite:
            _start_again(out)
        folders = out / "models"
        started = folders.is_dir() and any(
            checkpoints(f / "checkpoints") or (f / "result.json").exists()
            for f in folders.iterdir()
        )
        if started:
            _check_models(out, specs)
        check_recipe(out, settings, started, RECIPE, ("weights",))
        text = yaml.safe_dump(settings, sort_keys=False)
        atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(text))
        weights = class_weights(data.train, data.train_log.good_indices(), config.class_weights)
        if weights is not None:
            listing = ", ".join(
                f"{c} {w:.3f}" for c, w in zip(data.train.classes, weights.tolist(), strict=True)
            )
            log.info("class weights (%s): %s", config.class_weights, listing)
        results: list[SegmentResult] = []
        saved: dict[str, Path] = {}
        photos = data.photos()
        for spec in specs:
            name = split_name(spec)[0]
            folder = folders / _safe(name)
            path = folder / f"{_safe(name)}.safetensors"
            done = folder / "result.json"
            if done.exists() and path.exists():
                log.info("%s: done in an earlier run (%s)", name, done)
                result = SegmentResult.from_dict(json.loads(done.read_text()))
            else:
                folder.mkdir(parents=True, exist_ok=True)
                made_from = split_name(spec)[1]
                atomic_write(folder / MODEL_RECORD, lambda t, m=made_from: Path(t).write_text(m))
                name, model = open_spec(spec, photos)
                if config.bn_stats == "target":  # at the crops its head trains on
                    batchnorm_from(model, photos, config.seed, config.crop, config.resize)
                result = train_segmenter(
                    model,
                    data.train,
                    data.train_log,
                    data.test,
                    data.test_indices,
                    config,
                    folder,
                    name,
                    weights,
                )
                trunk = dict(model.provenance)
                provenance = {
                    "segmented from": spec,
                    "data": data.train.spec,
                    "segment": {
                        "head": config.head,
                        "resize": config.resize,
                        "crop": config.crop,
                        "epochs": config.epochs,
                        "trained": _trained(config),
                    },
                    "classes": list(data.train.classes),
                    "palette": data.train.palette.tolist(),
                    "scores": result.scores[config.columns()[-1]].summary(),
                    "splitbrain": __version__,
                    **{k: trunk[k] for k in ("geometry", "decoding") if k in trunk},
                    "trunk": trunk,
                }
                save(result.model, path, provenance)
                text = json.dumps(result.to_dict(), indent=1)
                atomic_write(done, lambda tmp, text=text: Path(tmp).write_text(text))
                shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # the result is kept
            results.append(result)
            saved[result.name] = path
            summary = result.scores[config.columns()[-1]].summary()
            scores = ", ".join(f"{k} {v:.1f}" for k, v in summary.items())
            log.info("%s: %s", name, scores, extra=SUMMARY)
            paths = write_segment_report(out, data, config, settings, results, saved)
            if report:
                report(paths)
        return results


def _trained(config: SegmentConfig) -> str:
    if config.head == "hypercolumn":
        return "the head only (the trunk frozen)"
    return f"above {config.freeze_through}" if config.freeze_through else "all layers"
