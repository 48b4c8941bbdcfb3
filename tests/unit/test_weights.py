"""Weights files: round trip, metadata, and clear errors for files that are not ours."""

import json
from pathlib import Path

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


@pytest.mark.parametrize("name", ["splitbrain_lab", "rgbd", "channels"])
def test_files_written_by_version_0_1_still_load(tmp_path, name):
    """tests/data holds the headers (metadata, tensor names, shapes, dtypes) of weights files
    that version 0.1 wrote: a file with that header loads, into the same kind of model."""
    header = json.loads((Path(__file__).parent / "files" / "weights_v0.1_headers.json").read_text())
    record = header[name]
    dtypes = {"F32": torch.float32, "I64": torch.int64}
    tensors = {
        k: torch.zeros(shape, dtype=dtypes[dtype])
        for k, (shape, dtype) in record["tensors"].items()
    }
    path = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=record["metadata"])
    model = sb.load(path)
    saved = json.loads(record["metadata"]["config"])
    assert model.config.split.name == saved["split"]["name"]
    assert model.split.space.kind == saved["split"]["space"]["kind"]
    assert model.split.space.to_dict() == {
        k: v if k == "kind" else tuple(v) for k, v in saved["split"]["space"].items()
    }
    assert set(model.state_dict()) == set(tensors)
    # and this version writes the same configuration back
    rewritten = sb.save(model, tmp_path / "again.safetensors")
    with safe_open(str(rewritten), framework="pt") as f:
        again = json.loads(f.metadata()["config"])
    saved.pop("extra")  # the one field dropped since 0.1: it was never used
    assert again == saved


def test_info_describes_a_weights_file(tmp_path, capsys):
    from splitbrain.cli import main
    from splitbrain.models import count_parameters

    model = sb.build("splitbrain", preset="small", width=0.25)
    path = sb.save(model, tmp_path / "w.safetensors")
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{path}: variant splitbrain, split lab, preset small, "
        f"{count_parameters(model):,} parameters"
    )
    assert lines[1] == "  L->ab: width 0.125, inputs (0,) -> ab (cl)"
    assert lines[2] == "  ab->L: width 0.125, inputs (1, 2) -> L (cl)"
    assert lines[3] == f"  layers: {', '.join(model.layer_names)}"
    assert main(["info", str(tmp_path / "missing.safetensors")]) == 1
    assert "missing.safetensors" in capsys.readouterr().err


# ------------------------------------------------------------------ self-describing weights


def test_a_weights_file_copied_alone_gives_the_same_results_as_in_its_run_folder(
    tmp_path, capsys, caplog
):
    import logging
    import shutil

    import numpy as np
    from PIL import Image
    from safetensors import safe_open
    from safetensors.torch import save_file

    from splitbrain.cli import main

    rng = np.random.default_rng(3)
    data = tmp_path / "tiny.npz"
    np.savez(data, images=rng.integers(0, 256, (24, 80, 80, 3), dtype=np.uint8))
    run = tmp_path / "run"
    argv = ["pretrain", "--data", f"npz:{data}", "--preset", "small", "--width", "0.125",
            "--crop", "48", "--resize", "56", "--batch-size", "8", "--steps", "2",
            "--workers", "0", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    alone = tmp_path / "elsewhere" / "alone.safetensors"
    alone.parent.mkdir()
    shutil.copy(run / "weights.safetensors", alone)
    for path in (run / "weights.safetensors", alone):
        assert sb.load(path).geometry() == (56, 48)  # not the preset's 36 -> 32
    assert sb.load(alone, preset="small").geometry(crop=40) == (56, 40)  # flags still win
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(photo)
    outputs = []
    for name, weights in (("beside", run / "weights.safetensors"), ("alone", alone)):
        out = tmp_path / name
        assert main(["colorize", str(photo), "--weights", str(weights), "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
        features = tmp_path / f"{name}.safetensors"
        extract = ["extract", "--weights", str(weights), "--data", f"npz:{data}", "--pool",
                   "paper", "--out", str(features), "--workers", "0", "--no-progress"]  # fmt: skip
        assert main(extract) == 0
        with safe_open(str(features), framework="pt") as f:
            outputs.append(((out / "photo.png").read_bytes(), f.get_tensor("conv5"),
                            f.metadata()["crop"]))  # fmt: skip
    (picture, conv5, crop), (picture_alone, conv5_alone, crop_alone) = outputs
    assert picture == picture_alone and crop == crop_alone == "48"
    assert torch.equal(conv5, conv5_alone)
    assert main(["info", str(alone)]) == 0
    geometry = "  geometry:\n    preset: small\n    resize: 56\n    crop: 48\n"
    assert geometry in capsys.readouterr().out
    # a file of this version without a recorded geometry: the run's config.yaml, said so
    with safe_open(str(alone), framework="pt") as f:  # as this version wrote it before
        metadata = {k: v for k, v in f.metadata().items() if k != "provenance"}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(run / "old.safetensors"), metadata={**metadata, "provenance": "{}"})
    with caplog.at_level(logging.INFO, logger="splitbrain.weights"):
        assert sb.load(run / "old.safetensors").geometry() == (56, 48)
        shutil.copy(run / "old.safetensors", alone)
        assert sb.load(alone).geometry() == (36, 32)  # alone: the preset's
    assert (
        f"old.safetensors records no geometry: the run's, from {run / 'config.yaml'}" in caplog.text
    )
    assert "alone.safetensors records no geometry: its preset's" in caplog.text


def test_colorize_decodes_as_the_weights_file_records(tmp_path, capsys):
    """The decoding is part of the file: written with every file (the paper's by default),
    used by every colorizer unless a flag says otherwise, shown by info."""
    import numpy as np
    from PIL import Image

    from splitbrain.cli import main
    from splitbrain.colorize import colorize
    from splitbrain.weights import read_provenance

    model = sb.build("splitbrain", preset="small", width=0.25)
    default = sb.save(model, tmp_path / "default.safetensors")
    assert read_provenance(default)["decoding"] == {"decode": "annealed", "temperature": 0.38}
    path = sb.save(
        model, tmp_path / "mode.safetensors", {"steps": 5, "decoding": {"decode": "mode"}}
    )
    loaded = sb.load(path)
    assert loaded.decoding() == ("mode", 0.38) and loaded.decoding("mean", 0.5) == ("mean", 0.5)
    photo = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    by_file = colorize(loaded, photo)
    assert np.array_equal(by_file, colorize(model, photo, decode="mode"))
    assert not np.array_equal(by_file, colorize(model, photo))  # annealed differs
    Image.fromarray(photo).save(tmp_path / "photo.png")
    for name, flags in (("file", []), ("flag", ["--decode", "annealed"])):
        # float32 as colorize() above, also on a CPU where the command's default is bf16
        argv = ["colorize", str(tmp_path / "photo.png"), "--weights", str(path), "--out",
                str(tmp_path / name), "--no-progress", "--precision", "32-true",
                *flags]  # fmt: skip
        assert main(argv) == 0
    written = {n: np.asarray(Image.open(tmp_path / n / "photo.png")) for n in ("file", "flag")}
    assert np.array_equal(written["file"], by_file)
    assert np.array_equal(written["flag"], colorize(model, photo))
    assert main(["info", str(path)]) == 0
    assert "  decoding:\n    decode: mode\n" in capsys.readouterr().out
