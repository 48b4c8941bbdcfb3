"""Prepared shards (``splitbrain prepare``): what goes in comes out, by random access."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from splitbrain.data import BadImage, DatasetError, EvalTransform, ImageDataset, open_source
from splitbrain.data.shards import ShardSource, prepare


def _smooth(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth colour image (JPEG keeps such images within a few grey levels)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phase = np.random.default_rng(seed).uniform(0, 6, 3)
    return np.stack([127 + 100 * np.sin(4 * x + 3 * y + p) for p in phase], -1).astype(np.uint8)


@pytest.fixture
def photos(tmp_path) -> Path:
    """Two classes of large and small photographs."""
    root = tmp_path / "photos"
    for k, (height, width) in enumerate([(600, 800), (300, 200), (100, 120), (512, 512)]):
        folder = root / ("cats" if k % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_smooth(height, width, k)).save(folder / f"{k}.png")
    return root


def test_prepared_items_are_the_originals_shrunk_to_the_side(photos, tmp_path):
    original = open_source(f"folder:{photos}")
    meta = prepare(original, tmp_path / "out", side=256, quality=95, shard_images=3,
                   workers=1, progress=False)  # fmt: skip
    assert meta["images"] == 4 and meta["shards"] == ["shard-000000.tar", "shard-000001.tar"]
    prepared = open_source(f"shards:{tmp_path / 'out'}")
    assert isinstance(prepared, ShardSource)
    assert len(prepared) == 4 and prepared.classes == original.classes == ["cats", "dogs"]
    assert prepared.labels.tolist() == original.labels.tolist()
    # the shorter side shrinks to 256, never grows; the aspect ratio is kept
    shapes = [prepared[i].shape for i in range(4)]
    assert shapes == [(300, 200, 3), (256, 256, 3), (256, 341, 3), (100, 120, 3)]
    transform = EvalTransform(256, 96)
    for i in range(4):
        ours, theirs = ImageDataset(prepared, transform)[i], ImageDataset(original, transform)[i]
        assert ours[1] == theirs[1]
        assert (ours[0].int() - theirs[0].int()).abs().float().mean() < 1.5, i


def test_bad_files_are_skipped_and_counted(messy_folder, tmp_path):
    meta = prepare(open_source(f"folder:{messy_folder}"), tmp_path / "out", workers=2,
                   progress=False)  # fmt: skip
    assert meta["skipped"] == {"truncated": 2, "empty": 1, "not an image": 1}
    assert meta["images"] == 11 == len(open_source(f"shards:{tmp_path / 'out'}"))


def test_workers_and_the_main_process_read_the_same_items(photos, tmp_path):
    prepare(open_source(f"folder:{photos}"), tmp_path / "out", workers=1, progress=False)
    dataset = ImageDataset(open_source(f"shards:{tmp_path / 'out'}"), EvalTransform(96, 96))
    batches = [
        next(iter(DataLoader(dataset, batch_size=4, num_workers=workers,
                             collate_fn=ImageDataset.collate)))
        for workers in (0, 2)
    ]  # fmt: skip
    assert torch.equal(batches[0][0], batches[1][0])
    assert torch.equal(batches[0][1], batches[1][1])


def test_shards_are_plain_webdataset_tars(photos, tmp_path):
    webdataset = pytest.importorskip("webdataset")
    prepare(open_source(f"folder:{photos}"), tmp_path / "out", shard_images=3, workers=1,
            progress=False)  # fmt: skip
    prepared = open_source(f"shards:{tmp_path / 'out'}")
    urls = [str(tmp_path / "out" / name) for name in prepared.meta["shards"]]
    stream = webdataset.WebDataset(urls, shardshuffle=False).decode("rgb8").to_tuple("jpg", "cls")
    read = list(stream)
    assert [label for _, label in read] == prepared.labels.tolist()
    assert all(np.array_equal(image, prepared[i]) for i, (image, _) in enumerate(read))


def test_damage_is_named(photos, tmp_path):
    with pytest.raises(DatasetError, match=r"shards:.*nothing: no prepared.json .*prepare"):
        open_source(f"shards:{tmp_path / 'nothing'}")
    prepare(open_source(f"folder:{photos}"), tmp_path / "out", workers=1, progress=False)
    prepared = open_source(f"shards:{tmp_path / 'out'}")
    shard = Path(prepared.files[0])
    shard.write_bytes(shard.read_bytes()[: int(prepared.offset[-1]) + 10])
    with pytest.raises(BadImage, match=r"shard-000000.tar:000000003.jpg: truncated"):
        prepared.load(3)


def test_command_line_writes_each_split_and_data_specs_find_it(photos, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "splitbrain", "prepare", str(photos), str(out), "--side", "128",
         "--splits", "train", "--no-progress"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"{out / 'train'}: 4 images in 1 shards" in result.stdout
    assert f"--data shards:{out}" in result.stdout
    prepared = open_source(str(out))  # the format is detected
    assert prepared.format == "shards" and prepared.meta["side"] == 128
    assert min(prepared[0].shape[:2]) == 128
