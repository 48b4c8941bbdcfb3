"""Pre-training: resumption after SIGKILL, data parallel ranks, the command line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

import splitbrain as sb
from splitbrain.cli import build_parser
from splitbrain.cli.pretrain import config_from_args
from splitbrain.data import open_source
from splitbrain.data.shards import prepare
from splitbrain.objective import Objective
from splitbrain.runs.checkpoints import checkpoints
from splitbrain.runs.stream import StepSampler
from splitbrain.train import TrainConfig, pretrain
from splitbrain.train.config import RECIPE_KEYS
from splitbrain.train.task import PretrainTask

CLI = [sys.executable, "-m", "splitbrain"]


def _pretrain_command(data: Path | str, out: Path, steps: int, *extra: str) -> list[str]:
    return [
        *CLI,
        "pretrain",
        "--data",
        data if isinstance(data, str) else f"npz:{data}",
        "--preset",
        "small",
        "--width",
        "0.125",
        "--batch-size",
        "8",
        "--steps",
        str(steps),
        "--workers",
        "0",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return sb.load(path).state_dict()


def test_step_sampler_splits_global_batches_and_resumes():
    full = list(StepSampler(10, 4, 6, seed=3))
    assert len(full) == 24
    # positions 0-9 are epoch 0, 10-19 epoch 1: each a permutation drawn from (seed, epoch)
    for epoch in (0, 1):
        order = torch.randperm(10, generator=torch.Generator().manual_seed(3 * 1_000_003 + epoch))
        assert [i for i, _ in full[10 * epoch : 10 * epoch + 10]] == order.tolist()
    assert len({seed for _, seed in full}) == 24  # every sample its own augmentation seed
    ranks = [list(StepSampler(10, 4, 6, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    for step in range(6):
        merged = ranks[0][2 * step : 2 * step + 2] + ranks[1][2 * step : 2 * step + 2]
        assert merged == full[4 * step : 4 * step + 4]
    resumed = list(StepSampler(10, 4, 6, seed=3, start_step=2))
    assert resumed == full[8:]
    assert len(StepSampler(10, 4, 6, seed=3, start_step=2)) == 24  # counted from step 0
    with pytest.raises(ValueError, match="not divisible by 3 devices"):
        StepSampler(10, 4, 6, world_size=3)


def test_a_killed_run_on_shards_resumes_to_the_same_weights(tmp_path, tiny_npz):
    """The shards of `splitbrain prepare` keep the guarantee that tests/e2e/test_faults.py
    checks on an npz file."""
    steps, every = 60, 10
    prepare(open_source(f"npz:{tiny_npz}"), tmp_path / "shards", workers=1, progress=False)
    data = f"shards:{tmp_path / 'shards'}"
    straight = tmp_path / "straight"
    subprocess.run(
        _pretrain_command(data, straight, steps, "--checkpoint-every", str(every)),
        check=True,
        capture_output=True,
    )

    killed = tmp_path / "killed"
    command = _pretrain_command(data, killed, steps, "--checkpoint-every", str(every))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not checkpoints(killed / "checkpoints") and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    found = checkpoints(killed / "checkpoints")
    assert found, "the run was killed before its first checkpoint"
    checkpoint = found[0][1]
    stopped_at = torch.load(checkpoint, weights_only=False)["global_step"]
    assert 0 < stopped_at < steps, "the run finished before it could be killed"
    assert not (killed / "weights.safetensors").exists()

    result = subprocess.run(command, check=True, capture_output=True, text=True)
    assert f"resuming from {checkpoint}" in result.stdout
    assert "not resumable" not in result.stderr  # Lightning's warning is not true here
    ours = _weights(killed / "weights.safetensors")
    theirs = _weights(straight / "weights.safetensors")
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


class _RecordRank(L.Callback):
    """Saves what each rank saw and ended with."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.labels: list[list[int]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.labels.append(batch[1].tolist())

    def on_train_end(self, trainer, module):
        state = {k: v.clone() for k, v in module.model.state_dict().items()}
        torch.save(
            {"labels": self.labels, "state": state}, self.folder / f"rank{trainer.global_rank}.pt"
        )


def test_ddp_two_cpu_processes_share_the_global_batch(tmp_path, tiny_npz):
    config = TrainConfig(
        data=f"npz:{tiny_npz}",
        out=str(tmp_path / "run"),
        preset="small",
        width=0.125,
        batch_size=8,
        steps=4,
        workers=0,
        accelerator="cpu",
        devices=2,
        progress=False,
    )
    pretrain(config, callbacks=[_RecordRank(tmp_path)], strategy="ddp_spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    # Parameters agree; BatchNorm running statistics are per rank without SyncBatchNorm,
    # which torch implements for GPUs only.
    parameters = {
        name for name, _ in sb.load(tmp_path / "run" / "weights.safetensors").named_parameters()
    }
    assert len(parameters) == 18  # 7 convs and a head per tower
    for name in parameters:
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
    expected = list(StepSampler(64, 8, 4, seed=0))
    for step in range(4):
        local = [ranks[r]["labels"][step] for r in (0, 1)]
        assert [len(x) for x in local] == [4, 4]
        assert local[0] + local[1] == [i for i, _ in expected[8 * step : 8 * step + 8]]


def test_learning_rate_follows_the_recipes_steps():
    """The ECCV16 recipe: x1/3, x1/10, x1/30 at 240k, 300k and 400k of 450k iterations, as
    fractions of the run; the scheduler the task hands Lightning applies them per step."""
    config = TrainConfig(preset="small", lr=1e-3)
    factors = [config.lr_factor(step, 450) for step in (0, 239, 240, 299, 300, 399, 400, 449)]
    assert factors == [1, 1, 1 / 3, 1 / 3, 1 / 10, 1 / 10, 1 / 30, 1 / 30]
    model = sb.build("splitbrain", preset="small", width=0.125)
    task = PretrainTask(model, config, total_steps=9, objective=Objective())
    optimisers = task.configure_optimizers()
    optimiser, schedule = optimisers["optimizer"], optimisers["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(9):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    # milestones round(9 * 240/450) = 5, round(9 * 300/450) = 6, round(9 * 400/450) = 8
    expected = [1e-3] * 5 + [1e-3 / 3, 1e-4, 1e-4, 1e-3 / 30]
    assert rates == pytest.approx(expected)


def test_rebalance_option_weights_the_loss_by_the_runs_bin_prior(tmp_path, tiny_npz, caplog):
    given = ["pretrain", "--data", "x", "--preset", "small"]
    assert config_from_args(build_parser().parse_args([*given, "--rebalance"])).rebalance == 0.5
    args = build_parser().parse_args([*given, "--rebalance", "0.25"])
    assert config_from_args(args).rebalance == 0.25
    assert config_from_args(build_parser().parse_args(given)).rebalance is None
    common = {
        "data": f"npz:{tiny_npz}", "preset": "small", "width": 0.125, "steps": 3,
        "batch_size": 8, "workers": 0, "progress": False,
    }  # fmt: skip
    with caplog.at_level("INFO", logger="splitbrain"):
        plain = sb.load(pretrain(TrainConfig(out=str(tmp_path / "plain"), **common)))
        weighted = sb.load(
            pretrain(TrainConfig(out=str(tmp_path / "weighted"), rebalance=0.5, **common))
        )
    assert "rebalancing ab: weights" in caplog.text and "rebalancing L: weights" in caplog.text
    assert "rebalance: 0.5" in (tmp_path / "weighted" / "config.yaml").read_text()
    a, b = plain.state_dict(), weighted.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_gaussian_variant_saves_calibrated_initial_weights(tmp_path, tiny_npz):
    config = TrainConfig(
        data=f"npz:{tiny_npz}",
        out=str(tmp_path / "g"),
        variant="gaussian",
        preset="small",
        width=0.125,
        batch_size=8,
        workers=0,
        progress=False,
    )
    model = sb.load(pretrain(config))
    bn = model.encoders[0].tower.layers["conv5"][1]
    assert not torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    assert not (tmp_path / "g" / "checkpoints").exists()


def test_a_folder_of_bad_files_trains_to_the_end_and_counts_them(tmp_path, messy_folder):
    result = subprocess.run(
        [
            *CLI,
            "pretrain",
            "--data",
            f"folder:{messy_folder}",
            "--preset",
            "small",
            "--width",
            "0.125",
            "--batch-size",
            "4",
            "--steps",
            "3",
            "--workers",
            "0",
            "--out",
            str(tmp_path / "run"),
            "--max-bad-fraction",
            "0.5",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "skipped 5 of 15 images: 2 truncated, 1 empty, 1 not an image, 1 too small; "
        "converted 5 (1 palette, 1 RGBA, 1 CMYK, 1 16-bit, 1 greyscale)"
    ) in result.stdout
    assert (tmp_path / "run" / "weights.safetensors").exists()
    stopped = subprocess.run(
        [*CLI, "pretrain", "--data", f"folder:{messy_folder}", "--out", str(tmp_path / "r2")],
        capture_output=True,
        text=True,
    )
    assert stopped.returncode == 1
    assert "are unusable (limit 1%)" in stopped.stderr
    assert not (tmp_path / "r2" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--batch-size", "0"], "--batch-size: must be positive"),
        (["--variant", "nope"], "invalid choice: 'nope'"),
        (["--epochs", "1", "--steps", "2"], "not allowed with argument"),
        (["--workers", "-1"], "--workers must be 0 or more"),
        (["--devices", "two"], "--devices must be a number or auto"),
        (["--resume", "--out", "/nonexistent/run"], "no checkpoint in /nonexistent/run"),
    ],
)
def test_argument_errors_exit_2_with_one_line(arguments, message):
    result = subprocess.run([*CLI, "pretrain", *arguments], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_sync_batchnorm_on_cpu_is_a_clear_error(tmp_path, tiny_npz):
    command = _pretrain_command(
        tiny_npz, tmp_path / "run", 2, "--sync-batchnorm", "--accelerator", "cpu"
    )
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "splitbrain pretrain: error: --sync-batchnorm: needs GPUs: torch's SyncBatchNorm has no "
        "CPU version"
    )


def test_refuses_to_resume_a_different_model(tmp_path, tiny_npz):
    out = tmp_path / "run"
    subprocess.run(_pretrain_command(tiny_npz, out, 2), check=True, capture_output=True)
    result = subprocess.run(
        _pretrain_command(tiny_npz, out, 2, "--variant", "l2ab-cl"), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "--variant splitbrain there, l2ab-cl now" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_version_and_help():
    version = subprocess.run([*CLI, "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"splitbrain {sb.__version__}"
    text = subprocess.run([*CLI, "pretrain", "--help"], capture_output=True, text=True).stdout
    for option in (
        "--data",
        "--variant",
        "--preset",
        "--epochs",
        "--steps",
        "--batch-size",
        "--lr",
        "--devices",
        "--precision",
        "--workers",
        "--resume",
        "--seed",
    ):
        assert option in text


def test_download_offline_fails_with_a_clear_message(tmp_path, monkeypatch, capsys):
    from urllib.error import URLError

    from splitbrain import cli
    from splitbrain.data import download

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(download, "urlopen", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    status = cli.main(
        [
            "pretrain",
            "--data",
            f"cifar10:{tmp_path / 'cifar'}",
            "--download",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    error = capsys.readouterr().err.strip()
    assert status == 1
    assert len(error.splitlines()) == 1, error
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in error
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_kraehenbuehl_init_and_periodic_knn_probe(tmp_path, tiny_npz):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    common = dict(
        data=f"npz:{tiny_npz}",
        preset="small",
        width=0.125,
        batch_size=8,
        workers=0,
        progress=False,
        variant="gaussian",
    )
    gaussian = sb.load(pretrain(TrainConfig(out=str(tmp_path / "g"), **common)))
    data_dependent = sb.load(
        pretrain(TrainConfig(out=str(tmp_path / "k"), init="kraehenbuehl", **common))
    )
    name = "encoders.0.tower.layers.conv2.0.weight"
    assert not torch.equal(gaussian.state_dict()[name], data_dependent.state_dict()[name])

    out = tmp_path / "probed"
    pretrain(
        TrainConfig(
            out=str(out),
            **{**common, "variant": "splitbrain"},
            steps=4,
            log_every=1,
            probe_every=2,
            probe_data=f"npz:{tiny_npz}",
        )
    )
    events = EventAccumulator(str(next((out / "tensorboard").glob("events*"))))
    events.Reload()
    steps = [s.step for s in events.Scalars("knn/top1")]
    assert len(steps) >= 2
    assert all(0.0 <= s.value <= 100.0 for s in events.Scalars("knn/top1"))  # percent


def test_rebalance_needs_a_classification_target(tmp_path, tiny_npz):
    config = TrainConfig(
        data=f"npz:{tiny_npz}", out=str(tmp_path / "reg"), variant="splitbrain-reg",
        preset="small", width=0.125, steps=1, batch_size=8, workers=0, progress=False,
        rebalance=0.5,
    )  # fmt: skip
    with pytest.raises(ValueError, match="splitbrain-reg on split lab has no classification"):
        pretrain(config)


def test_precision_defaults_to_bf16_where_the_device_has_it_and_says_why(monkeypatch):
    from splitbrain import device

    monkeypatch.setattr(device, "native_bf16", lambda d: True)
    config = TrainConfig(preset="small")
    assert config.precision == "bf16-mixed"
    assert "precision_reason: this CPU computes bfloat16 natively" in config.to_yaml()
    monkeypatch.setattr(device, "native_bf16", lambda d: False)
    config = TrainConfig(preset="small")
    assert (config.precision, config.precision_reason) == (
        "32-true",
        "this CPU has no native bfloat16",
    )
    config = TrainConfig(preset="small", precision="32-true")
    assert (config.precision, config.precision_reason) == ("32-true", "asked for")


def test_resize_max_reaches_the_training_data_and_must_not_be_below_resize():
    given = ["pretrain", "--data", "x", "--preset", "small", "--resize", "40"]
    config = config_from_args(build_parser().parse_args([*given, "--resize-max", "48"]))
    assert (config.resize, config.resize_max) == (40, 48) and "resize_max" in RECIPE_KEYS
    with pytest.raises(ValueError, match="resize_max 36 is below resize 40"):
        config_from_args(build_parser().parse_args([*given, "--resize-max", "36"]))
    rgbd = [*given, "--split", "rgbd", "--resize-max", "48"]
    with pytest.raises(ValueError, match="not RGB-D frames"):
        config_from_args(build_parser().parse_args(rgbd))


def test_an_unknown_initialisation_is_refused_not_trained_from_gaussian_weights():
    assert TrainConfig(preset="small", init="kraehenbuehl").init == "kraehenbuehl"
    with pytest.raises(ValueError, match="init 'kraehnbuehl': expected one of gaussian, kraeh"):
        TrainConfig(preset="small", init="kraehnbuehl")
