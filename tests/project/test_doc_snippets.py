"""The Python snippets of the README and docs/ run as written, in a scratch folder that holds
stand-ins for the files they name (a demo run's weights, the reader's photos, tiles, RGB-D
frames), with the budgets below swapped in so that each takes seconds."""

import dataclasses
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import splitbrain as sb
from splitbrain.inference import export_onnx

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: Per document, (text in a snippet, what replaces it here): smaller budgets, and the stand-in
#: for data a reader brings. Each must be found, so a changed snippet fails here until it is
#: looked at again.
SWAPS = {
    "README.md": [('torch.hub.load(".",', f"torch.hub.load({str(ROOT)!r},")],
    "CHANNELS.md": [("steps=500, batch_size=32", "steps=2, batch_size=8, workers=0")],
    "DATA.md": [("num_workers=2", "num_workers=0")],
    "EVALUATION.md": [
        ("../shared/data/cifar10", "cifar_like"),
        ("epochs=30)", "epochs=1, workers=0, progress=False)"),
        ('freeze_through="pool5")', 'freeze_through="pool5", epochs=1, workers=0, progress=False)'),
        (
            'KNNConfig(("conv5",), ks=(20, 200))',
            'KNNConfig(("conv5",), ks=(2, 5), workers=0)',
        ),
    ],  # fmt: skip
    "RGBD.md": [],
    "INIT.md": [],
    "SEGMENTATION.md": [],
    "DETECTION.md": [],
    "USE.md": [("path/to/splitbrain", str(ROOT))],
}


def snippets() -> list[tuple[str, int, str]]:
    """(document, line, code) of every ```python block."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in re.finditer(r"```python\n(.*?)```", text, re.S):
            name = doc.name if doc.parent in (ROOT, ROOT / "docs") else str(doc.relative_to(ROOT))
            found.append((name, text[: match.start()].count("\n") + 1, match.group(1)))
    return found


def _photos(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{k}.png")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder with the files the snippets name, made small."""
    work = tmp_path_factory.mktemp("snippets")
    rng = np.random.default_rng(0)
    demo = sb.build("splitbrain", preset="small", width=0.125)
    sb.save(demo, work / "runs/demo/weights.safetensors", {"steps": 5})
    photos = sb.build("splitbrain", preset="paper", width=0.125)
    sb.save(photos, work / "runs/photos/weights.safetensors", {"steps": 5})
    _photos(work, 1, (60, 80))
    (work / "0.png").rename(work / "grandma.jpg")
    _photos(work / "path/to/photos", 4, (120, 150))
    for split, n in (("train", 6), ("test", 4)):
        for label in ("cat", "dog"):
            _photos(work / "cifar_like" / split / label, n, (32, 32), seed=n)
    np.save(work / "tiles_uint16.npy", rng.integers(0, 10_000, (4, 16, 16, 13), dtype=np.uint16))
    save_file({"conv5": torch.rand(4, 256), "labels": torch.arange(4)}, work / "test.safetensors")
    export_onnx(photos, work / "features.onnx", "features", ["conv5", "fc7"])
    head = ("hypercolumn", ("conv1", "conv5"), ("road", "car"))
    segmenter = sb.SplitBrain(dataclasses.replace(demo.config, segmenter=head))
    sb.save(segmenter, work / "runs/segment/models/sb/sb.safetensors", {"segment": {"resize": 64}})
    detector = sb.SplitBrain(dataclasses.replace(demo.config, detector=(("car",), (8, 16), 64)))
    sb.save(detector, work / "runs/detect/models/sb/sb.safetensors", {"steps": 5})
    height, width = 48, 64
    depth = np.broadcast_to(np.linspace(1.0, 4.0, height)[:, None], (height, width))
    frames = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    depths = np.stack([depth, depth]).astype(np.float32)
    np.savez(work / "indoor_scenes_240x320.npz", rgb=frames, depth=depths)
    (work / "path/to").mkdir(parents=True, exist_ok=True)
    with h5py.File(work / "path/to/nyu_depth_v2_labeled.mat", "w") as f:  # MATLAB's axis order
        f["images"] = frames.transpose(0, 3, 2, 1)
        f["depths"] = depths.transpose(0, 2, 1)
        f["rawDepths"] = depths.transpose(0, 2, 1)
    return work


def test_this_test_knows_every_snippet():
    counts: dict[str, int] = {}
    for doc, _, _ in snippets():
        counts[doc] = counts.get(doc, 0) + 1
    assert set(counts) == set(SWAPS)
    assert counts == {"README.md": 2, "CHANNELS.md": 2, "DATA.md": 1, "EVALUATION.md": 2,
                      "INIT.md": 1, "RGBD.md": 2, "SEGMENTATION.md": 1,
                      "DETECTION.md": 1, "USE.md": 5}  # fmt: skip


@pytest.mark.parametrize(("doc", "line", "code"), snippets(), ids=lambda v: str(v)[:20])
def test_the_snippet_runs(doc, line, code, scratch, monkeypatch):
    for old, new in SWAPS[doc]:
        if old in code:
            code = code.replace(old, new)
    unused = [
        old for old, _ in SWAPS[doc] if not any(old in c for d, _, c in snippets() if d == doc)
    ]
    assert not unused, f"{doc}: no snippet holds {unused}"
    work = scratch / f"{doc}-{line}"
    shutil.copytree(scratch, work, ignore=shutil.ignore_patterns("*.md-*"))
    monkeypatch.chdir(work)
    rng = torch.Generator().manual_seed(0)
    names = {"rgb": torch.rand(2, 3, 96, 96, generator=rng),  # the tensors snippets assume
             "raw": torch.rand(8, 3, 96, 96, generator=rng)}  # fmt: skip
    exec(compile(code, f"{doc}:{line}", "exec"), names)
