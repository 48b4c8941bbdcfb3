"""Generic channel splits: the spec grammar, npz and TIFF channel data, a short training run."""

from pathlib import Path

import numpy as np
import pytest
import torch

import splitbrain as sb
from splitbrain.data import (
    DatasetError,
    EvalTransform,
    ImageDataset,
    TrainTransform,
    open_channels,
)
from splitbrain.splits import get_split, parse_channel_split
from splitbrain.train import TrainConfig, pretrain

tifffile = pytest.importorskip("tifffile")


def _images(n: int = 6, h: int = 20, w: int = 24, c: int = 13) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)


@pytest.fixture
def bands_npz(tmp_path: Path) -> Path:
    path = tmp_path / "bands.npz"
    np.savez(path, images=_images(), labels=np.arange(6))
    return path


def test_grammar_halves_losses_bins_range_and_count():
    split = get_split("channels:0-2/3-12:cl,reg:bins=16:n=13")
    first, second = split.halves
    assert first.inputs == (0, 1, 2) and second.inputs == tuple(range(3, 13))
    assert [t.quantizer for t in first.targets] == ["uniform:0.0:1.0:16"] * 10
    assert [(t.loss, t.channels) for t in second.targets] == [("reg", (0, 1, 2))]
    assert split.space.kind == "identity" and split.space.raw_channels == 13
    assert get_split(split.name) == split  # the canonical name parses back to the same split
    inferred = get_split("channels:0,1/3")
    assert inferred.space.raw_channels == 4 and all(
        t.loss == "reg" for h in inferred.halves for t in h.targets
    )
    narrow = parse_channel_split("channels:0/1:cl:range=0,0.5:bins=8")
    assert {t.quantizer for h in narrow.halves for t in h.targets} == {"uniform:0.0:0.5:8"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("channels:0,1/1,2", "both halves"),
        ("channels:0/1:xx", "cannot read"),
        ("channels:0/1:bins=1", "cannot read"),
        ("channels:0/1:range=1,0", "cannot read"),
        ("channels:0/4:n=3", "n=3"),
        ("channels:0-2", "expected channels:A/B"),
        ("channels:0,0/1", "twice"),
        ("rgb", "unknown split"),
    ],
)
def test_grammar_errors_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        get_split(spec)


def test_channel_dataset_over_npz(bands_npz):
    source = open_channels(f"npz:{bands_npz}")
    assert source.num_channels == 13 and len(source) == 6
    dataset = ImageDataset(source, TrainTransform(resize=16, crop=12), channels=13)
    item, label = dataset[4]
    assert item.shape == (13, 12, 12) and item.dtype == torch.uint8 and label == 4
    images, labels = ImageDataset.collate([dataset[0], dataset[1]])
    assert images.shape == (2, 13, 12, 12) and labels.tolist() == [0, 1]
    centre = ImageDataset(source, EvalTransform(resize=None, crop=12))[2][0]
    expected = _images()[2][4:16, 6:18].transpose(2, 0, 1)
    np.testing.assert_array_equal(centre.numpy(), expected)  # no resize: exact pixels
    assert "13 channels" in source.describe()
    with pytest.raises(DatasetError, match="n=13"):
        ImageDataset(source, TrainTransform(16, 12), channels=5)


def test_tiff_pages_as_channels_samples_and_folders(tmp_path):
    images = _images(n=2, c=5)
    folder = tmp_path / "tiles"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", images[0].transpose(2, 0, 1), photometric="minisblack")
    tifffile.imwrite(folder / "b.tiff", images[1], planarconfig="contig", photometric="minisblack")
    source = open_channels(f"tiff:{folder}")
    assert source.num_channels == 5 and len(source) == 2
    for i in range(2):
        np.testing.assert_array_equal(source[i], images[i])
    single = open_channels(folder / "b.tiff")
    assert len(single) == 1 and single[0].shape == (20, 24, 5)
    item = ImageDataset(source, EvalTransform(20, 16), channels=5)[0][0]
    assert item.shape == (5, 16, 16)
    tifffile.imwrite(tmp_path / "wide.tif", images[0].astype(np.uint16))
    with pytest.raises(DatasetError, match="uint8"):
        open_channels(tmp_path / "wide.tif")


def test_channel_split_model_learns_from_13_bands(bands_npz):
    torch.manual_seed(0)
    model = sb.build(
        "splitbrain", preset="small", split="channels:0-2/3-12:cl,reg:bins=8:n=13", width=0.125
    ).train()
    dataset = ImageDataset(open_channels(bands_npz), EvalTransform(16, 16), channels=13)
    images, _ = ImageDataset.collate(list(dataset))
    raw, valid = model.split.space.decode_batch(images)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss, _ = sb.Objective()(model, raw, valid)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_pretrain_on_channel_data_through_the_python_api(bands_npz, tmp_path):
    config = TrainConfig(
        data=f"npz:{bands_npz}",
        out=str(tmp_path / "run"),
        preset="small",
        split="channels:0-2/3-12:cl,reg:bins=8:n=13",
        width=0.125,
        crop=16,
        resize=20,
        steps=3,
        batch_size=4,
        workers=0,
        progress=False,
    )
    weights = pretrain(config)
    model = sb.load(weights)
    assert model.split == get_split(config.split)
    assert model.features(torch.rand(1, 13, 16, 16), "conv5")["conv5"].shape[1] > 0


def test_small_channel_tiles_are_resized_to_the_crop_not_skipped(tmp_path):
    """Unlike photographs, channel tiles smaller than half the crop are training data."""
    from splitbrain.train.data import open_training_data

    path = tmp_path / "small.npz"
    np.savez(path, images=_images(n=5, h=6, w=7, c=5))
    config = TrainConfig(
        data=f"npz:{path}", out=str(tmp_path / "run"), preset="small",
        split="channels:0-1/2-4", crop=16, progress=False,
    )  # fmt: skip
    dataset, report = open_training_data(config)
    assert len(dataset) == 5 and dataset[0][0].shape == (5, 16, 16)
    assert report() == "skipped 0 of 5 images"
