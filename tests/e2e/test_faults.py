"""Fault tolerance, the runs that stop and resume: kills, stop signals, damaged checkpoints, a
full disk, a changed recipe, the lock; and the parts (rolling checkpoints, the recipe guard)
they are made of. The runs that cannot go on are in test_broken_runs.py; every scenario of the
fault table is in tests/fault_scenarios.py."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from fault_scenarios import Faults

from splitbrain.cli import main
from splitbrain.errors import CheckpointError
from splitbrain.runs.checkpoints import checkpoints, resumable_checkpoint


@pytest.fixture(scope="module")
def faults(tmp_path_factory, tiny_npz):
    """The scenarios on 64 random 32 px images, sharing one uninterrupted reference run."""
    return Faults(f"npz:{tiny_npz}", tmp_path_factory.mktemp("faults"))


def test_sigkill_during_training_resumes_to_the_same_weights(faults):
    row = faults.sigkill_during_training()
    assert row.fault_status == -9 and row.rerun_status == 0
    assert row.seen.startswith("resuming from") and "exactly" in row.seen
    assert row.lost.startswith("none") and row.equal == "yes"


def test_sigkill_during_a_checkpoint_write_leaves_no_half_checkpoint(faults):
    row = faults.sigkill_during_checkpoint_write()
    assert row.fault_status == -9 and row.rerun_status == 0
    assert "step-00000002.ckpt" in row.seen  # the write of step 4 never became a checkpoint
    assert row.lost == "none (steps after 2 redone)" and row.equal == "yes"
    assert not list((faults.root / "killed-in-write" / "checkpoints").glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["truncated", "zero-byte"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(faults, damage):
    row = faults.damaged_checkpoint(damage)
    assert row.rerun_status == 0 and row.equal == "yes"
    problem = "unreadable (PytorchStreamReader" if damage == "truncated" else "empty (0 bytes)"
    assert f"step-00000006.ckpt: {problem}" in row.seen
    assert row.lost.startswith("none")


def test_no_loadable_checkpoint_is_one_line_exit_1_and_nothing_deleted(faults):
    row = faults.no_checkpoint_loads()
    assert row.rerun_status == 1 and row.lost == "none (nothing deleted)"
    assert row.seen.startswith("splitbrain: error: ") and "no checkpoint can be resumed" in row.seen


def test_a_changed_recipe_is_refused_naming_both_values(faults):
    row = faults.changed_recipe()
    assert row.rerun_status == 1 and row.lost == "none (run folder untouched)"
    assert "--batch-size 8 there, 16 now" in row.seen and "--seed 0 there, 1 now" in row.seen


def test_a_nan_loss_stops_the_run_before_anything_is_written(faults):
    row = faults.nan_loss()
    assert row.fault_status == 1 and row.rerun_status == 0
    assert row.seen.startswith("splitbrain: error: step 3: loss ")
    assert "is nan (last finite value" in row.seen and "at step 2" in row.seen
    assert row.lost == "none (steps after 2 redone)" and row.equal == "yes"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_full_disk_is_one_line_saying_what_to_do_and_resumable(faults, workers):
    row = faults.disk_full(workers)
    assert row.fault_status == 1 and row.rerun_status == 0
    assert row.seen.endswith(
        "step-00000004.ckpt: could not write (No space left on device): free space on its disk, "
        "then run the same command again to resume from its newest checkpoint"
    )
    assert row.lost == "none (steps after 2 redone)" and row.equal == "yes"
    assert row.exit_after < 10 and row.left == "none" and not row.traceback


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_saves_the_step_reached_and_resumes_bit_for_bit(faults, name):
    row = faults.stop_signal(name)
    code = {"SIGTERM": 143, "SIGINT": -2}[name]  # Ctrl-C ends by SIGINT: 130 in a shell
    assert row.fault_status == code and row.rerun_status == 0
    assert row.seen.startswith(f"splitbrain: interrupted by {name} at step 3 of 6: checkpoint ")
    out = faults.root / name.lower()
    assert "step-00000003.ckpt; to resume: splitbrain pretrain --data " in row.seen
    assert row.seen.endswith(f"--out {out}")
    assert row.lost == "none (checkpoint at step 3, the step reached)" and row.equal == "yes"


def test_a_stop_signal_during_the_last_step_lets_the_run_finish(faults):
    row = faults.stop_signal("SIGTERM", step=5)
    assert row.fault_status == 0 and row.rerun_status == 0 and row.equal == "yes"
    assert row.seen == "SIGTERM came during the last step: the run ends with it"


def test_sigterm_to_every_process_of_the_job_spares_the_loader_workers(faults):
    row = faults.stop_signal("SIGTERM", whole_job=True)
    assert row.fault_status == 143 and row.rerun_status == 0 and row.left == "none"
    assert row.lost == "none (checkpoint at step 3, the step reached)" and row.equal == "yes"


def test_sigusr1_under_slurm_requeues_after_the_checkpoint(faults):
    row = faults.slurm_requeue()
    assert row.fault_status == 138 and row.rerun_status == 0
    assert "at step 3 of 6: checkpoint " in row.seen
    assert "; SLURM job 4242 requeued: it resumes from this checkpoint" in row.seen
    assert row.lost == "none (scontrol requeue 4242 called)" and row.equal == "yes"


def test_a_second_run_and_a_stale_lock(faults):
    second = faults.second_run()
    assert second.fault_status == 1 and second.lost == "none (folder untouched)"
    assert second.seen.startswith("splitbrain: error: ") and " is in use by pid " in second.seen
    stale = faults.stale_lock()
    assert stale.rerun_status == 0 and stale.equal == "yes"
    assert "taking over a stale lock (pid " in stale.seen and "no longer running" in stale.seen


def test_recipe_guard_accepts_what_changes_neither_model_nor_stream(tmp_path, capsys, caplog):
    data = tmp_path / "tiny.npz"
    rng = np.random.default_rng(1)
    np.savez(data, images=rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8))
    base = ["pretrain", "--data", f"npz:{data}", "--preset", "small", "--width", "0.125",
            "--batch-size", "8", "--workers", "0", "--no-progress",
            "--out", f"{tmp_path}/r"]  # fmt: skip
    lightning = logging.getLogger("lightning.pytorch")  # its own handler; it does not propagate
    lightning.addHandler(caplog.handler)
    try:
        assert main([*base, "--steps", "4", "--checkpoint-every", "2"]) == 0
    finally:
        lightning.removeHandler(caplog.handler)
    assert "max_steps=4" not in caplog.text  # Lightning's information lines are ours instead
    assert "weights_only" not in caplog.text  # and no notice at every checkpoint
    capsys.readouterr()
    # more workers, another checkpoint interval and a longer finished run: accepted, logged
    assert main([*base, "--steps", "6", "--checkpoint-every", "3", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint_every 3 (was 2)" in out and "workers 1 (was 0)" in out
    assert "extending the finished run from 4 to 6 steps" in out
    assert checkpoints(tmp_path / "r" / "checkpoints")[0][0] == 6
    # a shorter run than the one finished: refused
    assert main([*base, "--steps", "5"]) == 1
    assert "holds a run of 6 steps (at step 6); this command asks for 5" in capsys.readouterr().err


#: The keys a resume requires, and nothing else.
_SMALLEST_CHECKPOINT = {"state_dict": {}, "optimizer_states": [], "global_step": 2, "loops": {}}


def test_keeps_the_newest_checkpoints_and_renames_a_corrupt_one(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save(_SMALLEST_CHECKPOINT, folder / "step-00000002.ckpt")
    (folder / "step-00000004.ckpt").write_bytes(b"PK\x03\x04 half a zip")
    (folder / ".step-00000006.ckpt.abc.tmp").write_bytes(b"interrupted")
    with caplog.at_level(logging.WARNING, logger="splitbrain.runs"):
        assert resumable_checkpoint(folder) == folder / "step-00000002.ckpt"
    assert "step-00000004.ckpt: unreadable" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == [
        "step-00000002.ckpt",
        "step-00000004.ckpt.corrupt",
    ]
    torch.save({"state_dict": {}}, folder / "step-00000008.ckpt")  # loads, but is no checkpoint
    (folder / "step-00000002.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a training checkpoint.*nothing was deleted"):
        resumable_checkpoint(folder)
    assert len(list(folder.iterdir())) == 3


class _RunsCode:
    """Unpickling this calls ``Path.touch``: what a planted checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_skipped_without_running_it(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save(_SMALLEST_CHECKPOINT, folder / "step-00000002.ckpt")
    marker = tmp_path / "code-ran"
    planted = {**_SMALLEST_CHECKPOINT, "global_step": 4, "loops": {"payload": _RunsCode(marker)}}
    torch.save(planted, folder / "step-00000004.ckpt")
    with caplog.at_level(logging.WARNING, logger="splitbrain.runs"):
        assert resumable_checkpoint(folder) == folder / "step-00000002.ckpt"
    assert not marker.exists()
    assert "step-00000004.ckpt: unreadable (Weights only load failed" in caplog.text
