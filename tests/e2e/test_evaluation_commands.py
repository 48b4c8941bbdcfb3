"""The evaluation commands: probe, knn and finetune, their reports and their errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import splitbrain as sb
from splitbrain.cli import main
from splitbrain.weights import read_provenance

FAST = ["--workers", "0", "--no-progress", "--batch-size", "32"]


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> dict[str, Path]:
    """Train and test npz files of 32 px images with 3 (or 12) classes, one unlabeled file,
    and a tiny saved model."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    paths = {}
    for name, n in (("train", 96), ("test", 48)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        paths[name] = folder / f"{name}.npz"
        np.savez(paths[name], images=images, labels=np.arange(n) % 3)
        paths[f"{name}12"] = folder / f"{name}12.npz"
        np.savez(paths[f"{name}12"], images=images, labels=np.arange(n) % 12)
    paths["unlabeled"] = folder / "unlabeled.npz"
    np.savez(paths["unlabeled"], images=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8))
    torch.manual_seed(0)
    paths["weights"] = sb.save(
        sb.build("splitbrain", preset="small", width=0.125), folder / "run" / "weights.safetensors"
    )
    return paths


def data_args(npz, suffix: str = "") -> list[str]:
    return ["--data", f"npz:{npz['train' + suffix]}", "--test-data", f"npz:{npz['test' + suffix]}"]


def test_probe_writes_one_table_and_plot_for_several_models(npz, tmp_path, capsys):
    out = tmp_path / "probe"
    argv = ["probe", "--weights", str(npz["weights"]), "gaussian:small:0.125", *data_args(npz),
            "--layers", "conv1,conv3", "--epochs", "1", "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "mode: augmented" in printed and "probe grids at 32 px: conv1 27x27x12" in printed
    report = json.loads((out / "probe.json").read_text())
    (table,) = report["tables"]
    assert table["columns"] == ["conv1", "conv3"]
    assert list(table["rows"]) == ["run", "gaussian:small:0.125"]  # one row per model
    assert report["settings"]["mode"].startswith("augmented")
    assert "| run |" in (out / "probe.md").read_text()
    assert (out / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_cached_mode_all_layers_and_top5(npz, tmp_path, capsys):
    out = tmp_path / "cached"
    argv = ["probe", "--weights", f"mine={npz['weights']}", *data_args(npz, "12"),
            "--layers", "all", "--epochs", "1", "--cache-features", "--cache-dir",
            str(tmp_path / "cache"), "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "mode: cached features" in capsys.readouterr().out
    report = json.loads((out / "probe.json").read_text())
    top1, top5 = report["tables"]  # 12 classes: top-5 as well
    assert top5["metric"] == "top-5 (%)"
    assert top1["columns"] == sb.build("splitbrain", preset="small").layer_names
    assert list((tmp_path / "cache").iterdir()) == []  # the feature cache is cleaned up


def test_knn_command(npz, tmp_path, capsys):
    out = tmp_path / "knn"
    argv = ["knn", "--weights", str(npz["weights"]), *data_args(npz), "--layers",
            "conv5,fc7", "--k", "5,20", "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "knn.json").read_text())
    assert [t["metric"] for t in report["tables"]] == ["top-1 k=5 (%)", "top-1 k=20 (%)"]
    assert report["tables"][0]["columns"] == ["conv5", "fc7"]
    assert (out / "knn.png").exists()


def test_finetune_single_and_multi_label(npz, tmp_path):
    out = tmp_path / "ft"
    base = ["finetune", "--weights", str(npz["weights"]), *data_args(npz), "--epochs", "1",
            "--freeze-through", "pool5", *FAST]  # fmt: skip
    assert main([*base, "--out", str(out)]) == 0
    report = json.loads((out / "finetune.json").read_text())
    assert report["tables"][0]["metric"] == "top1 (%)"
    assert report["models"][0]["head_layer"] == "fc7"
    # the weights file says what its report says: the layers above pool5 were trained
    (tuned,) = out.glob("models/*/*.safetensors")
    assert read_provenance(tuned)["trained"] == report["settings"]["trained"] == "above pool5"

    rng = np.random.default_rng(1)
    for name, n in (("train", 96), ("test", 48)):
        np.save(tmp_path / f"{name}.npy", rng.integers(0, 2, (n, 5)))
    argv = [*base, "--targets", str(tmp_path / "train.npy"), "--test-targets",
            str(tmp_path / "test.npy"), "--out", str(tmp_path / "ml")]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "ml" / "finetune.json").read_text())
    assert report["tables"][0]["metric"] == "mAP (%)"
    assert len(report["models"][0]["per_class_ap"]) == 5


def test_unlabeled_data_is_a_clear_error(npz, capsys):
    argv = ["knn", "--weights", "gaussian:small:0.125", "--data", f"npz:{npz['unlabeled']}", *FAST]
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert "has no labels" in error and len(error.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["probe", "--layers", "conv9"], "--layers: unknown layer conv9"),
        (["knn", "--k", "0"], "--k: neighbour counts must be positive"),
        (["finetune", "--targets", "x.npy"], "--targets and --test-targets go together"),
    ],
)
def test_argument_errors_exit_2_with_one_line(npz, argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--weights", "gaussian:small", "--data", f"npz:{npz['train']}"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_every_weights_file_is_checked_before_any_work(npz, tmp_path, capsys):
    out = tmp_path / "never"
    run_folder = npz["weights"].parent
    (run_folder / "checkpoints").mkdir(exist_ok=True)
    checkpoint = run_folder / "checkpoints" / "step-00000010.ckpt"
    checkpoint.write_bytes(b"")
    cases = [
        (tmp_path / "typo.safetensors", "typo.safetensors: no such file"),
        (run_folder, f"{run_folder} is a run folder; use {npz['weights']}"),
        (checkpoint, f"{checkpoint} is a training checkpoint; use {npz['weights']}"),
    ]
    for second, message in cases:
        argv = ["knn", "--weights", str(npz["weights"]), str(second), *data_args(npz),
                "--out", str(out), *FAST]  # fmt: skip
        assert main(argv) == 1  # bad input, as in every command (2 is for a misused option)
        captured = capsys.readouterr()
        assert message in captured.err and len(captured.err.strip().splitlines()) == 1
        assert captured.out == ""  # not even the data was opened
    assert not out.exists()


def test_rows_with_the_same_name_are_refused_with_a_hint(npz, tmp_path, capsys):
    other = tmp_path / "b" / "run" / "weights.safetensors"
    other.parent.mkdir(parents=True)
    other.write_bytes(npz["weights"].read_bytes())
    with pytest.raises(SystemExit):
        main(["knn", "--weights", str(npz["weights"]), str(other), *data_args(npz), *FAST])
    error = capsys.readouterr().err
    assert "two rows named 'run'" in error and f"run-2={other}" in error


def test_an_earlier_report_is_kept_and_rows_are_written_as_they_are_done(
    npz, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "knn"
    argv = ["knn", "--weights", str(npz["weights"]), *data_args(npz), "--out", str(out), *FAST]
    assert main(argv) == 0
    first = (out / "knn.json").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # the same command on its finished folder: no work, the table shown
    printed = capsys.readouterr().out
    assert f"{out}: finished earlier, nothing to do; its report: {out / 'knn.md'}" in printed
    assert "top-1" in printed and (out / "knn.json").read_text() == first
    assert not (tmp_path / "knn-2").exists()
    assert main([*argv, "--k", "3"]) == 0  # another recipe: the finished folder is kept
    assert f"{out} holds an earlier knn report; this one goes to {out}-2" in capsys.readouterr().out
    assert (out / "knn.json").read_text() == first and (tmp_path / "knn-2" / "knn.json").exists()
    assert main([*argv, "--overwrite"]) == 0 and not (tmp_path / "knn-3").exists()

    import splitbrain.evaluate.engine as engine

    opened, evaluated = engine.open_model, []

    def second_model_fails(spec, *args):
        evaluated.append(spec)
        if spec == "gaussian:small:0.125":
            raise ValueError(f"{spec}: cannot be evaluated")
        return opened(spec, *args)

    monkeypatch.setattr(engine, "open_model", second_model_fails)
    later = tmp_path / "later"
    argv = ["knn", "--weights", str(npz["weights"]), "broken=gaussian:small:0.125",
            *data_args(npz), "--out", str(later), *FAST]  # fmt: skip
    assert main(argv) == 1
    report = json.loads((later / "knn.json").read_text())
    assert list(report["tables"][0]["rows"]) == ["run"]  # the first model's row was kept
    # the same command again resumes: the row done is kept, the other one is made
    monkeypatch.setattr(engine, "open_model", opened)
    assert main(argv) == 0
    report = json.loads((later / "knn.json").read_text())
    assert list(report["tables"][0]["rows"]) == ["run", "broken"]
    assert "run: done in an earlier run" in capsys.readouterr().out
    assert not (tmp_path / "later-2").exists()


def test_a_channel_split_model_is_probed_on_a_labelled_channel_stack(tmp_path, capsys):
    """Four channels; the class is planted in the level of channel 3 only."""
    rng = np.random.default_rng(1)
    files = {}
    for split, n in (("train", 96), ("test", 48)):
        labels = np.arange(n) % 2
        stack = rng.integers(0, 256, (n, 32, 32, 4), dtype=np.uint8)
        stack[..., 3] = np.where(labels[:, None, None] == 1, 200, 50) + rng.integers(
            -30, 30, (n, 32, 32)
        )
        files[split] = tmp_path / f"{split}.npz"
        np.savez(files[split], images=stack, labels=labels)
    model = sb.build("splitbrain", preset="small", split="channels:0,1/2,3:n=4", width=0.125)
    weights = sb.save(model, tmp_path / "bands" / "weights.safetensors")
    out = tmp_path / "probe"
    argv = ["probe", "--weights", str(weights), "--data", f"npz:{files['train']}",
            "--test-data", f"npz:{files['test']}", "--layers", "conv1", "--epochs", "10",
            "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    top1 = json.loads((out / "probe.json").read_text())["tables"][0]["rows"]["bands"]["conv1"]
    assert top1 > 90  # chance is 50


def test_an_rgbd_model_is_probed_on_labelled_rgbd_frames(tmp_path):
    """Near and far scenes: the class is the depth of the frame."""
    rng = np.random.default_rng(2)
    files = {}
    for split, n in (("train", 24), ("test", 12)):
        labels = np.arange(n) % 2
        rgb = rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8)
        depth = np.where(labels[:, None, None] == 1, 4.0, 1.0) + rng.uniform(0, 0.2, (n, 48, 64))
        files[split] = tmp_path / f"{split}.npz"
        np.savez(files[split], rgb=rgb, depth=depth.astype(np.float32), labels=labels)
    model = sb.build("splitbrain", preset="small", split="rgbd", width=0.125)
    weights = sb.save(model, tmp_path / "rgbd" / "weights.safetensors")
    out = tmp_path / "probe"
    argv = ["probe", "--weights", str(weights), "--data", f"npz:{files['train']}",
            "--test-data", f"npz:{files['test']}", "--layers", "conv1", "--epochs", "10",
            "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    top1 = json.loads((out / "probe.json").read_text())["tables"][0]["rows"]["rgbd"]["conv1"]
    assert top1 > 75  # chance is 50


def test_models_that_read_different_data_are_refused_together(npz, tmp_path, capsys):
    bands = sb.save(sb.build("splitbrain", preset="small", split="channels:0,1/2,3:n=4",
                             width=0.125), tmp_path / "bands.safetensors")  # fmt: skip
    with pytest.raises(SystemExit):
        main(["knn", "--weights", str(npz["weights"]), str(bands), *data_args(npz), *FAST])
    error = capsys.readouterr().err
    assert "reads images" in error and "reads channels" in error and "separate runs" in error


def test_extract_gives_an_rgbd_model_features_of_rgbd_frames(tmp_path):
    rng = np.random.default_rng(3)
    frames = tmp_path / "frames.npz"
    np.savez(frames, rgb=rng.integers(0, 256, (5, 48, 64, 3), dtype=np.uint8),
             depth=rng.uniform(1, 3, (5, 48, 64)).astype(np.float32),
             labels=np.array([0, 1, 0, 1, 1]))  # fmt: skip
    model = sb.build("splitbrain", preset="small", split="rgbd", width=0.125)
    weights = sb.save(model, tmp_path / "rgbd.safetensors")
    out = tmp_path / "f.npz"
    argv = ["extract", "--weights", str(weights), "--data", f"npz:{frames}", "--layers",
            "conv5", "--out", str(out), "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    features = np.load(out)
    assert features["conv5"].shape == (5, model.layer_channels("conv5"))
    assert features["labels"].tolist() == [0, 1, 0, 1, 1]


def test_a_baseline_is_built_at_the_width_of_the_weights_it_is_compared_with(npz, tmp_path, capsys):
    weights = str(npz["weights"])  # 0.125 wide
    argv = ["knn", "--weights", weights, "gaussian:small", "full=gaussian:small:1",
            *data_args(npz), "--k", "5", "--out", str(tmp_path / "knn"), *FAST]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"gaussian:small: built at width 0.125, the width of {weights}" in printed
    rows = json.loads((tmp_path / "knn" / "knn.json").read_text())["tables"][0]["rows"]
    assert list(rows) == ["run", "gaussian:small:0.125", "full"]  # a width named is kept
    other = sb.save(sb.build("splitbrain", preset="small", width=0.25), tmp_path / "w.safetensors")
    argv = ["knn", "--weights", weights, str(other), "gaussian:small", *data_args(npz),
            "--k", "5", "--out", str(tmp_path / "knn2"), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "gaussian:small is 1 wide, the weights files 0.125, 0.25: give it a width" in (
        capsys.readouterr().err
    )
