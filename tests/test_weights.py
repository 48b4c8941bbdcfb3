"""Weights files: round trip, metadata, and clear errors for files that are not ours."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import splitbrain as sb
from splitbrain.splits import channel_split, rgbd_split


@pytest.mark.parametrize("variant", ["splitbrain", "joint-full", "ensemble-l2ab"])
def test_save_load_gives_identical_outputs(tmp_path, variant):
    model = sb.build(variant, preset="small", width=0.25)
    torch.optim.SGD(model.parameters(), 0.1)  # weights as built; BN stats below
    model.train()
    model(torch.rand(4, 3, 32, 32))  # move the BN running statistics away from their init
    model.eval()
    path = sb.save(model, tmp_path / "w.safetensors")
    loaded = sb.load(path).eval()
    rgb = torch.rand(2, 3, 32, 32)
    for ours, theirs in zip(model(rgb), loaded(rgb), strict=True):
        for name in ours:
            assert torch.equal(ours[name], theirs[name])
    assert loaded.config == model.config


def test_metadata_holds_the_configuration(tmp_path):
    path = sb.save(sb.build("splitbrain", preset="small", width=0.25), tmp_path / "w.safetensors")
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    assert config["variant"] == "splitbrain" and config["preset"] == "small"
    assert [e["width"] for e in config["encoders"]] == [0.125, 0.125]
    assert config["split"]["halves"][0]["targets"][0]["quantizer"] == "ab313"


def test_other_splits_round_trip(tmp_path):
    for split in (rgbd_split(), channel_split(13, (0, 1, 2), (3, 4), loss=("cl", "reg"))):
        model = sb.build("splitbrain", preset="small", split=split, width=0.25)
        loaded = sb.load(sb.save(model, tmp_path / "w.safetensors"))
        assert loaded.config.split == split


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 definitely not safetensors")
    with pytest.raises(sb.WeightsFileError, match="garbage.safetensors: not a safetensors"):
        sb.load(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(sb.WeightsFileError, match="foreign.safetensors: .*without splitbrain"):
        sb.load(foreign)
    good = sb.save(
        sb.build("splitbrain", preset="small", width=0.25), tmp_path / "good.safetensors"
    )
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(sb.WeightsFileError, match="truncated.safetensors"):
        sb.load(truncated)
    with pytest.raises(sb.WeightsFileError, match="missing.safetensors"):
        sb.load(tmp_path / "missing.safetensors")


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    sb.save(sb.build("splitbrain", preset="small", width=0.25), tmp_path / "w.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
