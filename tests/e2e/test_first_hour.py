"""A newcomer's first hour: defaults chosen from the data, and errors that say what to do."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import splitbrain as sb
from splitbrain.cli import main


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("fodler:photos", "fodler:photos: unknown format 'fodler'; known: folder, cifar10"),
        ("{tmp}/one.jpg", "one.jpg is a single image; data is a folder of images"),
        ("{tmp}/w.safetensors", "w.safetensors is a weights file, not data; pass it as --weights"),
    ],
)
def test_data_that_is_not_data_says_what_to_do(tmp_path, capsys, data, message):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "one.jpg")
    sb.save(sb.build("gaussian", preset="small", width=0.125), tmp_path / "w.safetensors")
    out = tmp_path / "run"
    argv = ["pretrain", "--data", data.format(tmp=tmp_path), "--preset", "small", "--out", str(out)]
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_a_run_that_failed_before_its_first_step_does_not_block_its_folder(tmp_path, capsys):
    data = tmp_path / "tiny.npz"
    rng = np.random.default_rng(2)
    np.savez(data, images=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8))
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("variant: l2ab-cl\nbatch_size: 64\n")  # and nothing else
    argv = ["pretrain", "--data", f"npz:{data}", "--preset", "small", "--width", "0.125",
            "--batch-size", "8", "--steps", "2", "--workers", "0", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "no checkpoint yet; starting it again" in capsys.readouterr().out


def test_asking_for_a_gpu_where_there_is_none_says_use_cpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv = ["pretrain", "--accelerator", "gpu", "--precision", "32-true", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2  # a setting that cannot work: a usage error
    error = capsys.readouterr().err.strip()
    assert error.endswith("--accelerator gpu: no GPU here (torch sees no CUDA device); "
                          "use --accelerator cpu")  # fmt: skip
    assert not (tmp_path / "config.yaml").exists()


def _tiny_images(folder: Path, count: int, side: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def test_the_preset_is_chosen_from_the_images(tmp_path, capsys):
    photos = _tiny_images(tmp_path / "photos", 24, 32)
    argv = ["pretrain", "--data", f"folder:{photos}", "--width", "0.125", "--batch-size", "8",
            "--steps", "1", "--workers", "0", "--no-progress",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "preset: small (median shorter side 32 px over 24 sampled images; small up to 96 px" in out
    )
    assert "preset: small" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_preset_that_does_not_fit_stops_early_naming_the_fix(tmp_path, capsys):
    photos = _tiny_images(tmp_path / "photos", 40, 32)
    out = tmp_path / "run"
    argv = ["pretrain", "--data", f"folder:{photos}", "--preset", "paper", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert (
        captured.err.strip()
        .splitlines()[-1]
        .endswith("too small for preset paper (180 px crops); use --preset small")
    )
    assert "the first 40 images are all too small (shorter side under 90 px" in captured.err
    skip_lines = [line for line in captured.err.splitlines() if line.startswith("skipping")]
    assert len(skip_lines) == 11  # ten by name, then one line for the rest
    assert not (out / "config.yaml").exists()


def test_every_skipped_item_is_listed_in_the_run_folder(tmp_path):
    photos = _tiny_images(tmp_path / "photos", 30, 32)
    for k in range(12):
        (photos / f"broken{k:02d}.jpg").write_bytes(b"not a jpeg")
    argv = ["pretrain", "--data", f"folder:{photos}", "--max-bad-fraction", "0.5", "--width",
            "0.125", "--batch-size", "8", "--steps", "1", "--workers", "0", "--no-progress",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    listed = (tmp_path / "run" / "skipped.txt").read_text().splitlines()
    assert listed == [f"{photos / f'broken{k:02d}.jpg'}\tnot an image" for k in range(12)]


def test_max_items_takes_an_evenly_spread_subset_everywhere(tmp_path, capsys):
    from splitbrain.data import open_source, spread_items

    data = tmp_path / "tiny.npz"
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    np.savez(data, images=images, labels=np.arange(100) // 25)  # four classes in a row
    subset = spread_items(open_source(f"npz:{data}"), 8)
    assert subset.indices.tolist() == [0, 14, 28, 42, 57, 71, 85, 99]
    assert subset.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # every class keeps some
    np.testing.assert_array_equal(subset[3], images[42])
    assert spread_items(subset.source, 500) is subset.source

    run = tmp_path / "run"
    common = ["--workers", "0", "--no-progress"]
    argv = ["pretrain", "--data", f"npz:{data}", "--max-items", "16", "--width", "0.125",
            "--batch-size", "8", "--epochs", "1", "--out", str(run), *common]  # fmt: skip
    assert main(argv) == 0
    assert "16 of them evenly spread (--max-items)" in capsys.readouterr().out
    # one epoch of 16 items in batches of 8: 2 steps
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000002.ckpt"]
    assert "max_items: 16" in (run / "config.yaml").read_text()
    features = tmp_path / "f.npz"
    argv = ["extract", "--weights", str(run / "weights.safetensors"), "--data", f"npz:{data}",
            "--max-items", "10", "--out", str(features), *common]  # fmt: skip
    assert main(argv) == 0
    assert np.load(features)["conv5"].shape[0] == 10
    argv = ["knn", "--weights", str(run / "weights.safetensors"), "--data", f"npz:{data}",
            "--max-items", "12", "--out", str(tmp_path / "knn"), *common]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "12 of them evenly spread" in printed
    # k=200 of the default is cut to the 12 neighbours there are, and the report says so
    assert "--k: 12 training images are the neighbours, so k is 12 (asked: 20, 200)" in printed
    assert "top-1 k=12 (%)" in printed and "k=200" not in printed
    report = (tmp_path / "knn" / "knn.md").read_text()
    assert report.startswith("# kNN classification, a trial on 12 items\n")
    assert "- subset: a trial: 12 items of each split, evenly spread\n" in report
    record = json.loads((tmp_path / "knn" / "knn.json").read_text())
    assert record["settings"]["subset"].startswith("a trial: 12 items")
    assert record["settings"]["ks"] == [12]
    assert main(["info", str(run / "weights.safetensors")]) == 0
    assert "  subset: 16 items, evenly spread\n" in capsys.readouterr().out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny labelled npz and a network pre-trained on it for two steps (the tests only read
    them)."""
    tmp_path = tmp_path_factory.mktemp("trained")
    data = tmp_path / "tiny.npz"
    rng = np.random.default_rng(5)
    np.savez(data, images=rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8),
             labels=np.arange(48) % 3)  # fmt: skip
    argv = ["pretrain", "--data", f"npz:{data}", "--preset", "small", "--width", "0.125",
            "--batch-size", "8", "--steps", "2", "--precision", "32-true", "--workers", "0",
            "--no-progress", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    return data, tmp_path / "run" / "weights.safetensors"


def test_info_shows_what_made_a_weights_file(trained, capsys):
    data, weights = trained
    capsys.readouterr()
    assert main(["info", str(weights)]) == 0
    out = capsys.readouterr().out
    for line in (f"data: npz:{data}", "steps: 2", "precision: 32-true",
                 "initialisation: gaussian", f"splitbrain: {sb.__version__}"):  # fmt: skip
        assert f"  {line}\n" in out, line


def test_finetuned_weights_reload_and_give_the_reported_accuracy(trained, tmp_path):
    import json

    from splitbrain.data import EvalTransform, ImageDataset, open_source

    data, weights = trained
    out = tmp_path / "ft"
    argv = ["finetune", "--weights", f"mine={weights}", "--data", f"npz:{data}", "--epochs", "2",
            "--precision", "32-true", "--batch-size", "16", "--workers", "0", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    reported = json.loads((out / "finetune.json").read_text())["models"][0]["scores"]["top1"]
    model = sb.load(out / "models" / "mine" / "mine.safetensors")
    assert model.config.classifier == ("fc7", ("0", "1", "2"))
    test = ImageDataset(open_source(f"npz:{data}"), EvalTransform(36, 32))
    images = torch.stack([test[i][0] for i in range(len(test))]).float() / 255
    labels = torch.tensor([test[i][1] for i in range(len(test))])
    accuracy = 100.0 * float((model.classify(images).argmax(1) == labels).float().mean())
    assert accuracy == pytest.approx(reported, abs=1e-6)


def test_init_from_starts_at_the_loaded_networks_loss(trained, tmp_path, caplog):
    import lightning as L

    from splitbrain.objective import Objective
    from splitbrain.runs.stream import make_loader
    from splitbrain.train import TrainConfig, pretrain
    from splitbrain.train.data import open_training_data

    data, weights = trained

    class FirstLoss(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == 1:
                self.loss = float(outputs["loss"])

    config = TrainConfig(
        data=f"npz:{data}", out=str(tmp_path / "again"), preset="small", width=0.125,
        batch_size=8, steps=1, workers=0, precision="32-true", progress=False,
        init_from=str(weights), seed=7,
    )  # fmt: skip
    first = FirstLoss()
    pretrain(config, callbacks=[first])
    dataset, _ = open_training_data(config)
    images, _ = next(iter(make_loader(dataset, 8, 1, seed=7)))
    loaded = sb.load(weights).train()
    raw, valid = loaded.split.space.decode_batch(images)
    expected, _ = Objective()(loaded, raw, valid)
    assert first.loss == pytest.approx(float(expected.detach()), rel=1e-5)

    # another variant with the same towers: the towers come along, the heads stay new
    other = TrainConfig(**{**config.__dict__, "variant": "splitbrain-reg",
                           "out": str(tmp_path / "reg")})  # fmt: skip
    with caplog.at_level("INFO", logger="splitbrain.train"):
        pretrain(other)
    assert "kept their initialisation: encoders.0.heads.ab.bias" in caplog.text
    mismatched = TrainConfig(**{**config.__dict__, "width": 0.25, "out": str(tmp_path / "w")})
    with pytest.raises(ValueError, match="whose towers do not match this run's"):
        pretrain(mismatched)


def test_every_command_says_which_file_to_use_instead(trained, capsys):
    _, weights = trained
    run = weights.parent
    (run / "checkpoints").mkdir(exist_ok=True)
    checkpoint = next((run / "checkpoints").glob("step-*.ckpt"))
    for command in (["info", str(run)], ["export", "--weights", str(run), "--onnx", "x.onnx"]):
        assert main(command) == 1
        assert capsys.readouterr().err.strip() == (
            f"splitbrain: error: {run} is a run folder; use {weights}"
        )
    assert main(["info", str(checkpoint)]) == 1
    assert f"{checkpoint} is a training checkpoint; use {weights}" in capsys.readouterr().err
