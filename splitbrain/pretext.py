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

It also holds the deterministic holdout grammar that ``rgbd-split`` and ``rgbd-eval`` share,
so that both commands see the same frames (docs/RGBD.md, "Held-out frames").
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from .atomic import atomic_write
from .color import lab_to_rgb
from .data.errors import DatasetError
from .data.rgbd import RGBDSource, open_rgbd
from .data.rgbd_dataset import RGBDDataset, RGBDSelection
from .depth import DISPARITY_NEAR_M, Intrinsics
from .models import SplitBrain
from .objective import downsample
from .quantize import ab_quantizer
from .splits import Target

__all__ = [
    "PretextEvaluation",
    "disparity_to_depth",
    "evaluate_pretext",
    "holdout_indices",
    "split_frames",
    "write_npz",
    "write_report",
]

HHA_CHANNELS = (3, 4, 5)
L_CHANNEL = (6,)
AB_CHANNELS = (7, 8)
HHA_NAMES = ("disparity", "height", "angle")
# Depth from disparity is clamped to [0.5 m, 20 m]: HHA disparity saturates at 0.5 m, and a
# near-zero predicted disparity would otherwise turn into an arbitrarily large depth.
DEPTH_MAX_M = 20.0
DELTA = 1.25
PANEL_MIN_SIDE = 128  # panels of small crops are enlarged (nearest) to at least this side


# --- held-out frames ----------------------------------------------------------------------


def holdout_indices(sizes: Sequence[int], spec: str) -> tuple[list[int], list[int]]:
    """(training, held-out) indices into the concatenation of sources of ``sizes`` frames.

    ``spec``: a fraction ``F`` in (0, 1), the last round(F * n) frames of each source (a
    contiguous tail: neighbouring frames of a sequence are near-duplicates, so an interleaved
    holdout would leak); ``every:K``, frames K-1, 2K-1, ... of each source; or explicit
    0-based indices into the concatenation, ``3,10,20-25``.
    """
    total = sum(sizes)
    starts = np.cumsum([0, *sizes])[:-1].tolist()

    def per_source(pick) -> set[int]:
        return {start + i for start, n in zip(starts, sizes, strict=True) for i in pick(n)}

    try:
        if spec.startswith("every:"):
            k = int(spec.removeprefix("every:"))
            if k < 2:
                raise ValueError
            held = per_source(lambda n: range(k - 1, n, k))
        elif re.fullmatch(r"0?\.\d+", spec):
            fraction = float(spec)
            held = per_source(lambda n: range(n - round(fraction * n), n))
        else:
            held = set()
            for part in spec.split(","):
                low, dash, high = part.partition("-")
                held.update(range(int(low), int(high if dash else low) + 1))
    except ValueError:
        raise ValueError(
            f"--holdout {spec!r}: use a fraction like 0.15, every:K (K >= 2), or indices "
            "like 3,10,20-25"
        ) from None
    if not held or max(held) >= total or len(held) == total:
        raise ValueError(
            f"--holdout {spec!r} holds out {len(held)} of {total} frames "
            f"(indices must be below {total}); both sets must be non-empty"
        )
    test = sorted(held)
    return [i for i in range(total) if i not in held], test


def split_frames(specs: Sequence[str], holdout: str) -> tuple[RGBDSelection, RGBDSelection]:
    """The (training, held-out) frames of the RGB-D sources ``specs``, concatenated in order."""
    sources = [open_rgbd(s) for s in specs]
    train, test = holdout_indices([len(s) for s in sources], holdout)
    return RGBDSelection(sources, train), RGBDSelection(sources, test)


def write_npz(source: RGBDSource, path: str | Path) -> Path:
    """Write frames as an ``npz:`` RGB-D file that ``open_rgbd`` reads back: ``rgb``, z-depth
    ``depth`` (range maps already converted), ``item_id``, and ``labels`` / ``intrinsics``
    when known. Frames whose camera is unknown while others' are known are written with the
    default camera (with a warning): the format has one intrinsics row per frame or none."""
    frames = [source[i] for i in range(len(source))]
    shapes = {rgb.shape for rgb, _ in frames}
    if len(shapes) != 1:
        raise DatasetError(
            f"{source.path}: frames differ in size {sorted(shapes)}; an npz needs one"
        )
    arrays = {
        "rgb": np.stack([rgb for rgb, _ in frames]),
        "depth": np.stack([depth for _, depth in frames]).astype(np.float32),
        "item_id": np.array([source.name(i) for i in range(len(source))]),
        "depth_kind": np.array("z_m"),
    }
    if source.labels is not None:
        arrays["labels"] = np.asarray(source.labels)
    cameras = [source.intrinsics(i) for i in range(len(source))]
    unknown = sum(c is None for c in cameras)
    if unknown < len(cameras):
        if unknown:
            warnings.warn(
                f"{path}: {unknown} frames without intrinsics written with the default camera",
                stacklevel=2,
            )
        h, w = frames[0][1].shape
        cameras = [c or Intrinsics.default(h, w) for c in cameras]
        arrays["intrinsics"] = np.array([[c.fx, c.fy, c.cx, c.cy] for c in cameras])
    return atomic_write(path, lambda tmp: _savez(tmp, arrays))


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to the name
        np.savez_compressed(f, **arrays)


# --- metrics ------------------------------------------------------------------------------


def disparity_to_depth(disparity: Tensor) -> Tensor:
    """HHA disparity (0..255) -> z-depth in metres, inverting 255 * min(1, 0.5 m / z), clamped
    to [0.5 m, 20 m]."""
    low = 255 * DISPARITY_NEAR_M / DEPTH_MAX_M
    return 255 * DISPARITY_NEAR_M / disparity.clamp(low, 255)


@dataclass
class _Task:
    """Where one pretext prediction comes from: an encoder, the inputs it may see, a target."""

    encoder: torch.nn.Module
    visible: tuple[int, ...]
    target: Target


def _tasks(model: SplitBrain) -> dict[str, _Task]:
    """The first task predicting each of HHA, L and ab; absent ones are simply not measured."""
    found: dict[str, _Task] = {}
    kinds = {HHA_CHANNELS: "hha", L_CHANNEL: "L", AB_CHANNELS: "ab"}
    for encoder in model.encoders:
        targets = {t.name: t for t in encoder.spec.half.targets}
        for task in encoder.spec.all_tasks:
            for name in task.targets:
                kind = kinds.get(targets[name].channels)
                if kind and kind not in found:
                    found[kind] = _Task(encoder, task.visible, targets[name])
    if model.split.space.kind != "rgbd" or not found:
        raise ValueError(
            f"{model.config.variant} on split {model.split.name!r}: not an RGB-D model"
        )
    return found


def _predict(model: SplitBrain, task: _Task, channels: Tensor, valid: Tensor) -> Tensor:
    """One task's raw output (N, D or Q, g, g), its unseen inputs zeroed as in training."""
    spec = task.encoder.spec
    inputs = model.encoder_input(task.encoder, channels, valid)
    keep = torch.tensor([c in task.visible for c in spec.half.inputs], dtype=inputs.dtype)
    return task.encoder(inputs * keep.view(1, -1, 1, 1), (task.target.name,))[task.target.name]


def _values(model: SplitBrain, task: _Task, output: Tensor, temperature: float = 0.38) -> Tensor:
    """Predicted channel values: regression outputs un-normalised, classifications decoded by
    the annealed mean (SPEC section 2)."""
    target = task.target
    if target.loss == "cl":
        return model.quantizer(target.quantizer).decode(output, "annealed", temperature)
    space = model.split.space
    shift = torch.tensor([space.shift[c] for c in target.channels]).view(1, -1, 1, 1)
    scale = torch.tensor([space.scale[c] for c in target.channels]).view(1, -1, 1, 1)
    return output.float() / scale + shift


def _upsample(x: Tensor, size: int) -> Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


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


def _loader(dataset: RGBDDataset, batch_size: int):
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        yield start, RGBDDataset.collate(items)[0]


@dataclass
class _Baselines:
    hha_mean: list[float]
    depth_mean: float
    l_mean: float
    ab_bin: int


@torch.no_grad()
def _training_baselines(model: SplitBrain, dataset: RGBDDataset, batch_size: int) -> _Baselines:
    """The constants the baselines predict: training means, and the most frequent ab bin."""
    space, quantizer = model.split.space, ab_quantizer()
    hha = [_Sums() for _ in HHA_NAMES]
    depth, lightness = _Sums(), _Sums()
    histogram = torch.zeros(quantizer.num_bins, dtype=torch.float64)
    grid_size = model.output_size(dataset.crop)
    for _, images in _loader(dataset, batch_size):
        raw, valid = space.decode_batch(images)
        channels = model.channels(raw)
        for k, sums in enumerate(hha):
            sums.add(channels[:, HHA_CHANNELS[k]], valid)
        depth.add(disparity_to_depth(channels[:, HHA_CHANNELS[0]]), valid)
        lightness.add(channels[:, L_CHANNEL[0]], valid)
        grid, cells = downsample(channels, grid_size, valid)
        bins = quantizer.encode_hard(grid[:, list(AB_CHANNELS)].double())
        histogram += torch.bincount(bins[cells], minlength=quantizer.num_bins).double()
    return _Baselines([s.mean for s in hha], depth.mean, lightness.mean, int(histogram.argmax()))


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
    tasks, space, quantizer = _tasks(model), model.split.space, ab_quantizer()
    base = _training_baselines(model, train, batch_size)
    crop, grid_size = test.crop, model.output_size(test.crop)
    sums: dict[str, _Sums] = {}

    def add(name: str, values: Tensor, mask: Tensor) -> None:
        sums.setdefault(name, _Sums()).add(values, mask)

    written: list[dict[str, str]] = []
    for start, images in _loader(test, batch_size):
        raw, valid = space.decode_batch(images)
        channels = model.channels(raw)
        grid, cells = downsample(channels, grid_size, valid)
        predicted: dict[str, Tensor] = {}
        if "hha" in tasks:
            hha = _upsample(
                _values(model, tasks["hha"], _predict(model, tasks["hha"], channels, valid)), crop
            )
            hha = predicted["hha"] = hha.clamp(0, 255)  # HHA's range: clamping is free
            for k, name in enumerate(HHA_NAMES):
                true = channels[:, HHA_CHANNELS[k]]
                add(f"hha_sq/{name}", (hha[:, k] - true).square(), valid)
                add(f"hha_base_sq/{name}", (base.hha_mean[k] - true).square(), valid)
            true_z = disparity_to_depth(channels[:, HHA_CHANNELS[0]])
            pred_z = disparity_to_depth(hha[:, 0])
            base_z = torch.full_like(true_z, base.depth_mean)
            for prefix, z in (("depth", pred_z), ("depth_base", base_z)):
                add(f"{prefix}_sq", (z - true_z).square(), valid)
                ratio = torch.maximum(z / true_z, true_z / z)
                add(f"{prefix}_delta", (ratio < DELTA).double(), valid)
        if "L" in tasks:
            lightness = _upsample(
                _values(model, tasks["L"], _predict(model, tasks["L"], channels, valid)), crop
            )
            predicted["L"] = lightness.clamp(0, 100)
            true = channels[:, L_CHANNEL[0]]
            add("L_sq", (lightness[:, 0] - true).square(), valid)
            add("L_base_sq", (base.l_mean - true).square(), valid)
        if "ab" in tasks:
            task = tasks["ab"]
            output = _predict(model, task, channels, valid)
            truth = quantizer.encode_hard(grid[:, list(AB_CHANNELS)].double())
            if task.target.loss == "cl":
                guess = output.argmax(1)
            else:
                guess = quantizer.encode_hard(_values(model, task, output).double())
            add("ab_top1", (guess == truth).double(), cells)
            add("ab_base_top1", (truth == base.ab_bin).double(), cells)
            predicted["ab"] = _upsample(_values(model, task, output), crop)
        if pictures is not None:
            for k in range(images.shape[0]):
                name = test.source.name(start + k)
                path = Path(pictures) / f"{start + k:03d}_{_safe(name)}.png"
                _save_panels(images[k], channels[k], {p: v[k] for p, v in predicted.items()}, path)
                written.append({"frame": name, "png": path.name})

    metrics: dict[str, dict[str, float | str]] = {}

    def metric(name: str, values: tuple[float, float], better: str) -> None:
        metrics[name] = {"model": values[0], "baseline": values[1], "better": better}

    def rmse(*names: str) -> float:
        return math.sqrt(np.mean([sums[n].mean for n in names]))

    if "hha" in tasks:
        model_sq, base_sq = (
            [f"hha_sq/{n}" for n in HHA_NAMES],
            [f"hha_base_sq/{n}" for n in HHA_NAMES],
        )
        metric("rgb_to_hha/rmse_hha", (rmse(*model_sq), rmse(*base_sq)), "lower")
        for name in HHA_NAMES:
            metric(
                f"rgb_to_hha/rmse_{name}",
                (rmse(f"hha_sq/{name}"), rmse(f"hha_base_sq/{name}")),
                "lower",
            )
        metric("rgb_to_hha/depth_rmse_m", (rmse("depth_sq"), rmse("depth_base_sq")), "lower")
        delta = (sums["depth_delta"].mean, sums["depth_base_delta"].mean)
        metric("rgb_to_hha/depth_delta_1.25", delta, "higher")
    if "ab" in tasks:
        metric("hha_to_ab/top1", (sums["ab_top1"].mean, sums["ab_base_top1"].mean), "higher")
    if "L" in tasks:
        metric("hha_to_L/rmse", (rmse("L_sq"), rmse("L_base_sq")), "lower")
    baselines = {
        "hha_mean": dict(zip(HHA_NAMES, base.hha_mean, strict=True)),
        "depth_mean_m": base.depth_mean,
        "L_mean": base.l_mean,
        "ab_prior_bin": base.ab_bin,
        "ab_prior_center": quantizer.centers[base.ab_bin].tolist(),
    }
    counts = {
        "train_frames": len(train),
        "test_frames": len(test),
        "valid_pixels": int(sums["hha_sq/disparity"].count) if "hha" in tasks else 0,
        "valid_cells": int(sums["ab_top1"].count) if "ab" in tasks else 0,
        "crop": crop,
        "grid": grid_size,
    }
    return PretextEvaluation(metrics, baselines, counts, written)


def _safe(name: str) -> str:
    """A frame name as a file-name part: no image suffix, no path separators."""
    name = re.sub(r"\.(png|jpe?g|ppm|bmp|tiff?)$", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:60] or "frame"


def _save_panels(item: Tensor, channels: Tensor, predicted: dict[str, Tensor], path: Path) -> None:
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
        panels.append(("true L, ab from HHA", lab_to_rgb(torch.cat((channels[6:7], ab))[None])[0]))
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
        out / "pretext.json", lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2))
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
