"""How well an RGB-D split-brain model solves its own pretext tasks on held-out frames.

The RGB-D model (SPEC section 6) is trained to predict HHA from RGB and Lab from HHA. Before
asking whether its features transfer, one should know whether it learned those mappings at
all, i.e. whether it beats predicting a constant. This module measures, on frames held out
from pre-training, each pretext task next to the best trivial baseline taken from the
training frames:

* RGB -> HHA: RMSE of the HHA channels over valid pixels, and depth recovered from the
  disparity channel (RMSE in metres; fraction of pixels with max(pred/true, true/pred) < 1.25);
  baseline: the training mean of each quantity.
* HHA -> ab: top-1 accuracy over the 313 bins at the prediction grid (valid cells); baseline:
  always the training set's most frequent bin.
* HHA -> L: RMSE over valid pixels; baseline: the training mean of L.

Which channels are HHA, L and ab is the channel space's to say (its ``groups``); each task is
one scorer class that gathers its baseline from the training frames and its errors from the
held-out ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from ..atomic import atomic_write
from ..color import lab_to_rgb
from ..jsontext import json_text
from ..losses import bin_histogram
from ..models import CrossChannelEncoder, SplitBrain
from ..objective import downsample
from ..quantize import ab_quantizer
from ..spaces import ChannelSpace
from ..splits import Target
from .dataset import RGBDDataset
from .hha import DISPARITY_NEAR_M

__all__ = ["PretextEvaluation", "disparity_to_depth", "evaluate_pretext", "write_report"]

HHA_NAMES = ("disparity", "height", "angle")
# Depth from disparity is clamped to [0.5 m, 20 m]: HHA disparity saturates at 0.5 m, and a
# near-zero predicted disparity would otherwise turn into an arbitrarily large depth.
DEPTH_MAX_M = 20.0
DELTA = 1.25
PANEL_MIN_SIDE = 128  # panels of small crops are enlarged (nearest) to at least this side


def disparity_to_depth(disparity: Tensor) -> Tensor:
    """HHA disparity (0..255) -> z-depth in metres, inverting 255 * min(1, 0.5 m / z), clamped
    to [0.5 m, 20 m]."""
    low = 255 * DISPARITY_NEAR_M / DEPTH_MAX_M
    return 255 * DISPARITY_NEAR_M / disparity.clamp(low, 255)


@dataclass
class _Sums:
    """Running sums over pixels or cells, so that every metric is pooled over all frames."""

    count: float = 0.0
    total: float = 0.0

    def add(self, values: Tensor, mask: Tensor) -> None:
        self.count += float(mask.sum())
        self.total += float(values[mask].double().sum())

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")


def _rmse(*sums: _Sums) -> float:
    return math.sqrt(np.mean([s.mean for s in sums]))


def _metric(model: float, baseline: float, better: str) -> dict[str, float | str]:
    return {"model": model, "baseline": baseline, "better": better}


class _Batch(NamedTuple):
    """One batch of frames in the model's channel space, at pixels and at the grid."""

    channels: Tensor
    valid: Tensor
    grid: Tensor
    cells: Tensor


class _Task(NamedTuple):
    """Where one pretext prediction comes from: an encoder, the inputs it may see, a target."""

    encoder: CrossChannelEncoder
    visible: tuple[int, ...]
    target: Target


class _Prediction(NamedTuple):
    """Predicted channel values at the grid, and the logits of a classification target."""

    values: Tensor
    logits: Tensor | None


def _predict(
    model: SplitBrain, task: _Task, batch: _Batch, temperature: float = 0.38
) -> _Prediction:
    """One task's prediction, its unseen inputs zeroed as in training: regressions
    un-normalised, classifications decoded by the annealed mean (SPEC section 2)."""
    spec = task.encoder.spec
    inputs = model.encoder_input(task.encoder, batch.channels, batch.valid)
    keep = torch.tensor([c in task.visible for c in spec.half.inputs], dtype=inputs.dtype)
    name = task.target.name
    output = task.encoder(inputs * keep.view(1, -1, 1, 1), (name,))[name]
    if task.target.loss == "cl":
        quantizer = model.quantizer(task.target.quantizer)
        return _Prediction(quantizer.decode(output, "annealed", temperature), output)
    return _Prediction(model.split.space.denormalise(output, task.target.channels), None)


def _upsample(x: Tensor, size: int) -> Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class _HHAScorer:
    """RGB -> HHA: per-channel and pooled RMSE, and the depth its disparity implies."""

    group = "HHA"

    def __init__(self, space: ChannelSpace) -> None:
        self.channels = space.groups[self.group]
        self.mean = [_Sums() for _ in HHA_NAMES]
        self.depth_mean = _Sums()
        self.sq = {k: [_Sums() for _ in HHA_NAMES] for k in ("model", "baseline")}
        self.depth_sq = {k: _Sums() for k in ("model", "baseline")}
        self.delta = {k: _Sums() for k in ("model", "baseline")}

    def fit(self, batch: _Batch) -> None:
        for k, sums in enumerate(self.mean):
            sums.add(batch.channels[:, self.channels[k]], batch.valid)
        self.depth_mean.add(disparity_to_depth(batch.channels[:, self.channels[0]]), batch.valid)

    def score(self, prediction: _Prediction, batch: _Batch) -> Tensor:
        crop, valid = batch.channels.shape[-1], batch.valid
        hha = _upsample(prediction.values, crop).clamp(0, 255)  # HHA's range: clamping is free
        true = batch.channels[:, list(self.channels)]
        for k in range(len(HHA_NAMES)):
            self.sq["model"][k].add((hha[:, k] - true[:, k]).square(), valid)
            self.sq["baseline"][k].add((self.mean[k].mean - true[:, k]).square(), valid)
        true_z = disparity_to_depth(true[:, 0])
        guesses = {
            "model": disparity_to_depth(hha[:, 0]),
            "baseline": torch.full_like(true_z, self.depth_mean.mean),
        }
        for who, z in guesses.items():
            self.depth_sq[who].add((z - true_z).square(), valid)
            ratio = torch.maximum(z / true_z, true_z / z)
            self.delta[who].add((ratio < DELTA).double(), valid)
        return hha

    def metrics(self) -> dict[str, dict[str, float | str]]:
        model, baseline = self.sq["model"], self.sq["baseline"]
        out = {"rgb_to_hha/rmse_hha": _metric(_rmse(*model), _rmse(*baseline), "lower")}
        for k, name in enumerate(HHA_NAMES):
            out[f"rgb_to_hha/rmse_{name}"] = _metric(_rmse(model[k]), _rmse(baseline[k]), "lower")
        depth = (_rmse(self.depth_sq["model"]), _rmse(self.depth_sq["baseline"]))
        out["rgb_to_hha/depth_rmse_m"] = _metric(*depth, "lower")
        delta = (self.delta["model"].mean, self.delta["baseline"].mean)
        out["rgb_to_hha/depth_delta_1.25"] = _metric(*delta, "higher")
        return out

    def baselines(self) -> dict[str, object]:
        hha = {n: s.mean for n, s in zip(HHA_NAMES, self.mean, strict=True)}
        return {"hha_mean": hha, "depth_mean_m": self.depth_mean.mean}

    def count(self) -> int:
        return int(self.sq["model"][0].count)


class _LightnessScorer:
    """HHA -> L: RMSE over valid pixels against the training mean of L."""

    group = "L"

    def __init__(self, space: ChannelSpace) -> None:
        (self.channel,) = space.groups[self.group]
        self.mean = _Sums()
        self.sq = {k: _Sums() for k in ("model", "baseline")}

    def fit(self, batch: _Batch) -> None:
        self.mean.add(batch.channels[:, self.channel], batch.valid)

    def score(self, prediction: _Prediction, batch: _Batch) -> Tensor:
        lightness = _upsample(prediction.values, batch.channels.shape[-1])
        true = batch.channels[:, self.channel]
        self.sq["model"].add((lightness[:, 0] - true).square(), batch.valid)
        self.sq["baseline"].add((self.mean.mean - true).square(), batch.valid)
        return lightness.clamp(0, 100)

    def metrics(self) -> dict[str, dict[str, float | str]]:
        rmse = (_rmse(self.sq["model"]), _rmse(self.sq["baseline"]))
        return {"hha_to_L/rmse": _metric(*rmse, "lower")}

    def baselines(self) -> dict[str, object]:
        return {"L_mean": self.mean.mean}


class _ABScorer:
    """HHA -> ab: top-1 over the 313 bins at the grid's valid cells, against the training
    set's most frequent bin; a regressed ab counts by its nearest bin."""

    group = "ab"

    def __init__(self, space: ChannelSpace) -> None:
        self.channels = list(space.groups[self.group])
        self.quantizer = ab_quantizer()
        self.histogram = torch.zeros(self.quantizer.num_bins, dtype=torch.float64)
        self.top1 = {k: _Sums() for k in ("model", "baseline")}

    def _bins(self, ab: Tensor) -> Tensor:
        return self.quantizer.encode_hard(ab.double())

    def fit(self, batch: _Batch) -> None:
        bins = self._bins(batch.grid[:, self.channels])
        self.histogram += bin_histogram(bins, self.quantizer.num_bins, batch.cells)

    def score(self, prediction: _Prediction, batch: _Batch) -> Tensor:
        truth = self._bins(batch.grid[:, self.channels])
        logits = prediction.logits
        guess = self._bins(prediction.values) if logits is None else logits.argmax(1)
        self.top1["model"].add((guess == truth).double(), batch.cells)
        prior = int(self.histogram.argmax())
        self.top1["baseline"].add((truth == prior).double(), batch.cells)
        return _upsample(prediction.values, batch.channels.shape[-1])

    def metrics(self) -> dict[str, dict[str, float | str]]:
        top1 = (self.top1["model"].mean, self.top1["baseline"].mean)
        return {"hha_to_ab/top1": _metric(*top1, "higher")}

    def baselines(self) -> dict[str, object]:
        prior = int(self.histogram.argmax())
        return {"ab_prior_bin": prior, "ab_prior_center": self.quantizer.centers[prior].tolist()}

    def count(self) -> int:
        return int(self.top1["model"].count)


#: The pretext kinds by channel group, in the order of the report's metrics.
SCORERS = {"hha": _HHAScorer, "ab": _ABScorer, "L": _LightnessScorer}


def _tasks(model: SplitBrain) -> dict[str, _Task]:
    """The first task predicting each pretext kind's channels; absent ones are not measured."""
    groups = model.split.space.groups
    if "HHA" not in groups:
        raise ValueError(
            f"{model.config.variant} on split {model.split.name!r}: not an RGB-D model"
        )
    kinds = {groups[scorer.group]: kind for kind, scorer in SCORERS.items()}
    found: dict[str, _Task] = {}
    for encoder in model.encoders:
        targets = {t.name: t for t in encoder.spec.half.targets}
        for task in encoder.spec.all_tasks:
            for name in task.targets:
                kind = kinds.get(targets[name].channels)
                if kind and kind not in found:
                    found[kind] = _Task(encoder, task.visible, targets[name])
    if not found:
        raise ValueError(
            f"{model.config.variant} on split {model.split.name!r}: not an RGB-D model"
        )
    return found


def _batches(model: SplitBrain, dataset: RGBDDataset, batch_size: int):
    """(first index, uint8 images, _Batch) over the dataset in order."""
    grid_size = model.output_size(dataset.crop)
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        images = RGBDDataset.collate(items)[0]
        raw, valid = model.split.space.decode_batch(images)
        channels = model.channels(raw)
        yield start, images, _Batch(channels, valid, *downsample(channels, grid_size, valid))


@dataclass
class PretextEvaluation:
    """Metrics as {name: {"model": x, "baseline": y, "better": "lower"|"higher"}}, the
    baselines' constants, pixel/cell counts and the per-frame pictures."""

    metrics: dict[str, dict[str, float | str]]
    baselines: dict[str, object]
    counts: dict[str, int]
    pictures: list[dict[str, str]]


@torch.no_grad()
def evaluate_pretext(
    model: SplitBrain,
    train: RGBDDataset,
    test: RGBDDataset,
    pictures: str | Path | None = None,
    batch_size: int = 16,
) -> PretextEvaluation:
    """Pretext metrics of ``model`` on ``test`` (centre crops) next to constant baselines from
    ``train``; with ``pictures``, one PNG per test frame is written into that folder."""
    if train.crop != test.crop:
        raise ValueError(f"train and test crops differ: {train.crop} vs {test.crop}")
    model.eval()
    space = model.split.space
    tasks = _tasks(model)
    scorers = {kind: scorer(space) for kind, scorer in SCORERS.items()}
    for _, _, batch in _batches(model, train, batch_size):
        for scorer in scorers.values():
            scorer.fit(batch)
    written: list[dict[str, str]] = []
    for start, images, batch in _batches(model, test, batch_size):
        predicted = {
            kind: scorers[kind].score(_predict(model, task, batch), batch)
            for kind, task in tasks.items()
        }
        for k in range(len(images) if pictures is not None else 0):
            name = test.source.name(start + k)
            path = Path(pictures) / f"{start + k:03d}_{_safe(name)}.png"
            panels = {kind: values[k] for kind, values in predicted.items()}
            _save_panels(space, images[k], batch.channels[k], panels, path)
            written.append({"frame": name, "png": path.name})
    metrics = {}
    for kind in SCORERS:
        if kind in tasks:
            metrics.update(scorers[kind].metrics())
    baselines = {}
    for kind in ("hha", "L", "ab"):
        baselines.update(scorers[kind].baselines())
    counts = {
        "train_frames": len(train),
        "test_frames": len(test),
        "valid_pixels": scorers["hha"].count() if "hha" in tasks else 0,
        "valid_cells": scorers["ab"].count() if "ab" in tasks else 0,
        "crop": test.crop,
        "grid": model.output_size(test.crop),
    }
    return PretextEvaluation(metrics, baselines, counts, written)


def _safe(name: str) -> str:
    """A frame name as a file-name part: no image suffix, no path separators."""
    name = re.sub(r"\.(png|jpe?g|ppm|bmp|tiff?)$", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:60] or "frame"


def _save_panels(
    space: ChannelSpace, item: Tensor, channels: Tensor, predicted: dict[str, Tensor], path: Path
) -> None:
    """RGB | true HHA | HHA predicted from RGB | Lab predicted from HHA (L and annealed-mean ab
    both predicted) | true L with the predicted ab. Panels of predictions the model lacks are
    left out; predictions are bilinearly upsampled from the grid."""
    panels = [("RGB", item[:3].float() / 255), ("HHA", item[3:6].float() / 255)]
    if "hha" in predicted:
        panels.append(("HHA from RGB", predicted["hha"] / 255))
    if "ab" in predicted:
        ab = predicted["ab"]
        if "L" in predicted:
            lab = torch.cat((predicted["L"], ab))
            panels.append(("Lab from HHA", lab_to_rgb(lab[None])[0]))
        true_l = channels[list(space.groups["L"])]
        panels.append(("true L, ab from HHA", lab_to_rgb(torch.cat((true_l, ab))[None])[0]))
    side = item.shape[-1]
    scale = max(1, math.ceil(PANEL_MIN_SIDE / side))
    caption, gap, width = 14, 4, side * scale
    sheet = Image.new("RGB", (len(panels) * (width + gap) - gap, width + caption), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (title, image) in enumerate(panels):
        pixels = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        panel = Image.fromarray(pixels).resize((width, width), Image.Resampling.NEAREST)
        sheet.paste(panel, (k * (width + gap), caption))
        draw.text((k * (width + gap) + 2, 1), title, fill="black")
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))


DEFINITIONS = {
    "rgb_to_hha/rmse_*": "RMSE of HHA (0..255 units) over valid pixels of the centre crops, the "
    "prediction upsampled bilinearly from the grid; rmse_hha pools the three channels",
    "rgb_to_hha/depth_rmse_m": "RMSE in metres of depth = 127.5 / disparity (clamped to "
    "0.5..20 m) over valid pixels; the truth is the item's uint8 disparity channel",
    "rgb_to_hha/depth_delta_1.25": "fraction of valid pixels with max(pred/true, true/pred) < 1.25",
    "hha_to_ab/top1": "top-1 accuracy over the 313 ab bins at the prediction grid, valid cells "
    "(targets: cell means over valid pixels, as in training)",
    "hha_to_L/rmse": "RMSE of L (0..100) over valid pixels, prediction upsampled from the grid",
    "baseline": "a constant from the training frames: the mean of each HHA channel, of depth and "
    "of L; for ab the most frequent bin",
}


def write_report(evaluation: PretextEvaluation, out: str | Path, header: dict) -> tuple[Path, Path]:
    """``pretext.json`` (everything) and ``pretext.md`` (a table) in ``out``."""
    out = Path(out)
    data = {
        **header,
        "counts": evaluation.counts,
        "metrics": evaluation.metrics,
        "baselines": evaluation.baselines,
        "definitions": DEFINITIONS,
        "pictures": evaluation.pictures,
    }
    json_path = atomic_write(
        out / "pretext.json", lambda tmp: Path(tmp).write_text(json_text(data, indent=2))
    )
    lines = [
        "# RGB-D pretext tasks on held-out frames",
        "",
        *(f"- {k}: {v}" for k, v in header.items()),
        *(f"- {k}: {v}" for k, v in evaluation.counts.items()),
        "",
        "| metric | model | baseline | better | model beats baseline |",
        "|---|---|---|---|---|",
    ]
    for name, m in evaluation.metrics.items():
        wins = m["model"] < m["baseline"] if m["better"] == "lower" else m["model"] > m["baseline"]
        lines.append(
            f"| {name} | {m['model']:.4g} | {m['baseline']:.4g} | {m['better']} | "
            f"{'yes' if wins else 'no'} |"
        )
    lines += ["", "Definitions:", "", *(f"- `{k}`: {v}" for k, v in DEFINITIONS.items()), ""]
    md_path = atomic_write(out / "pretext.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    return json_path, md_path
