"""Stops: every stop signal ends a command in one line saying why, with the usual exit code
(128 + the signal's number), and a command whose run folder resumes names the command that
resumes it, whenever the signal comes (before training, during a fit without checkpoints)."""

import multiprocessing
import shlex
import signal

import pytest

from splitbrain.cli import main, stops_end_the_command
from splitbrain.errors import Interrupted

STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
AT_ONCE = "and stopped at once, keeping what was finished"


class Unhandled(Exception):
    """A stop signal that reached the test's own handler: the command had set none."""


@pytest.fixture
def unhandled():
    """The stop signals raise Unhandled where a command leaves them alone (their defaults
    would end the test process, or Ctrl-C's be taken for the test run's); restored after."""

    def handler(signum, frame):
        raise Unhandled(signal.Signals(signum).name)

    saved = {signum: signal.signal(signum, handler) for signum in STOPS}
    yield handler
    for signum, previous in saved.items():
        signal.signal(signum, previous)


def _raising(signum: signal.Signals):
    def stand_in(*args, **kwargs):
        signal.raise_signal(signum)

    return stand_in


#: command: (its arguments, a function it calls before any training, whether it resumes)
BEFORE_TRAINING = {
    "pretrain": (["--steps", "2"], "splitbrain.cli.pretrain.config_from_args", True),
    "probe": (["--weights", "gaussian:small", "--data", "skimage:"],
              "splitbrain.evaluate.baselines.check_models", True),
    "knn": (["--weights", "gaussian:small", "--data", "skimage:"],
            "splitbrain.evaluate.baselines.check_models", True),
    "finetune": (["--weights", "gaussian:small", "--data", "voc:VOC2012"],
                 "splitbrain.evaluate.baselines.check_models", True),
    "segment": (["--weights", "gaussian:small", "--data", "masks:frames"],
                "splitbrain.evaluate.baselines.check_models", True),
    "extract": (["--weights", "w.safetensors", "--data", "skimage:"], "splitbrain.weights.load",
                False),
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(BEFORE_TRAINING))
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=lambda s: s.name)
def test_a_stop_before_training_ends_the_command_in_one_line(
    command, signum, tmp_path, monkeypatch, capsys, unhandled
):
    arguments, before_training, resumes = BEFORE_TRAINING[command]
    out = str(tmp_path / ("f.npz" if command == "extract" else "out"))
    argv = [command, *arguments, "--out", out]
    monkeypatch.setattr(before_training, _raising(signum))
    assert main(argv) == 128 + signum
    line = f"splitbrain: interrupted by {signum.name} {AT_ONCE}"
    if resumes:
        line += f"; to resume: {shlex.join(['splitbrain', *argv])}"
    assert capsys.readouterr().err == line + "\n"
    assert {s: signal.getsignal(s) for s in STOPS} == dict.fromkeys(STOPS, unhandled)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_during_a_probes_fit_ends_it_in_one_line(
    signum, tiny_npz, tmp_path, monkeypatch, capsys, unhandled
):
    """The probe's fit keeps no checkpoint: the row starts again. Lightning took Ctrl-C's
    KeyboardInterrupt inside a fit for a failure (exit 1, a SystemExit, without a word, and
    Ctrl-C ignored from then on) and SIGTERM for a request to leave (exit 0)."""
    from splitbrain.evaluate import probe

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, as in a process
    train = probe._ProbeTask.training_step

    def interrupted_step(self, batch, batch_idx):
        if batch_idx == 1:
            signal.raise_signal(signum)
        return train(self, batch, batch_idx)

    monkeypatch.setattr(probe._ProbeTask, "training_step", interrupted_step)
    argv = ["probe", "--weights", "gaussian:small:0.125", "--data", f"npz:{tiny_npz}",
            "--test-data", f"npz:{tiny_npz}", "--layers", "conv1", "--epochs", "1",
            "--batch-size", "8", "--stats-images", "16", "--workers", "0", "--no-progress",
            "--out", str(tmp_path / "probe")]  # fmt: skip
    assert main([*argv, "--overwrite"]) == 128 + signum
    resume = shlex.join(["splitbrain", *argv])  # not --overwrite: it would start again
    assert capsys.readouterr().err.splitlines() == [
        f"splitbrain: interrupted by {signum.name} {AT_ONCE}; to resume: {resume}"
    ]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not list((tmp_path / "probe").glob("models/*/result.json"))


def _signalled(signum: signal.Signals) -> None:
    signal.raise_signal(signum)


def test_forked_workers_end_by_the_signal_as_without_the_handler(unhandled):
    """A pool worker that inherits the handler ends by the signal, quietly, as a pool's
    ``terminate`` expects (ignoring it left ``prepare`` waiting forever on its workers); only
    the command itself stops in one line."""
    fork = multiprocessing.get_context("fork")
    with stops_end_the_command([signal.SIGTERM]):
        worker = fork.Process(target=_signalled, args=(signal.SIGTERM,))
        worker.start()
        worker.join(30)
        with pytest.raises(Interrupted) as stopped:  # in the command itself, a stop
            signal.raise_signal(signal.SIGTERM)
    assert worker.exitcode == -signal.SIGTERM
    assert str(stopped.value) == f"interrupted by SIGTERM {AT_ONCE}"
    assert signal.getsignal(signal.SIGTERM) is unhandled
