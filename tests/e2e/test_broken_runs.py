"""Fault tolerance, the runs that cannot go on: a NaN, a lost lock, a removed run folder, a bug
in a callback, bad files and weights that would run code, each ending in one line with its
workers; and the parts (write faults, run-folder errors) they are made of. Stops and resumes
are in test_faults.py."""

import errno
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from fault_scenarios import Faults
from lightning.pytorch.loggers import TensorBoardLogger

import splitbrain as sb
from splitbrain.atomic import atomic_write
from splitbrain.cli import quiet_third_parties
from splitbrain.data import open_source
from splitbrain.errors import NonFiniteError, RunFolderError, WriteError
from splitbrain.runs.folder import TensorBoardLog, explain, run_folder_faults


@pytest.fixture(scope="module")
def faults(tmp_path_factory, tiny_npz):
    """The scenarios on 64 random 32 px images, with one uninterrupted reference run."""
    return Faults(f"npz:{tiny_npz}", tmp_path_factory.mktemp("faults"))


def test_a_run_folder_removed_mid_run_ends_the_run_and_its_workers_in_one_line(faults):
    row = faults.folder_removed(workers=2)
    assert row.fault_status == 1 and row.exit_after < 10 and row.left == "none"
    out = faults.root / "removed-2-workers"
    assert row.seen.startswith(f"splitbrain: error: {out}: the run folder disappeared during ")
    assert not row.traceback  # nor TensorBoard's writer thread's
    assert row.rerun_status == 0 and row.equal == "yes"  # started afresh, nothing written there
    assert row.lost.startswith("the whole run")


def test_nan_a_lost_lock_and_a_bug_in_a_callback_end_the_run_and_its_workers(faults):
    nan = faults.nan_loss(workers=2)
    assert nan.fault_status == 1 and nan.seen.startswith("splitbrain: error: step 3: loss ")
    lost = faults.lock_lost(workers=2)
    assert lost.fault_status == 1 and "another process took this run folder over" in lost.seen
    bug = faults.callback_fails(workers=2)
    assert bug.fault_status == 1 and bug.seen == "RuntimeError: a bug in a callback"
    assert bug.traceback  # a bug: its traceback is what a report needs
    for row in (nan, lost, bug):
        assert row.exit_after < 10 and row.left == "none", row
        assert row.rerun_status == 0 and row.equal == "yes", row
    assert not nan.traceback and not lost.traceback


@pytest.mark.parametrize("command", ["pretrain", "probe", "knn", "finetune", "segment", "extract"])
def test_every_command_with_loader_workers_ends_with_them_on_an_error(faults, command):
    row = faults.loader_error(command)
    assert row.seen == "RuntimeError: a fault while loader workers ran"
    assert row.fault_status == 1 and row.exit_after < 10 and row.left == "none"


def test_bad_files_and_a_bomb_are_skipped_and_counted(faults):
    bad = faults.bad_files()
    assert bad.fault_status == 0
    assert "skipped 3 of 404 images: 1 truncated, 1 empty, 1 not an image" in bad.seen
    assert "converted 1 (1 palette)" in bad.seen  # the GIF
    bomb = faults.decompression_bomb()
    assert bomb.fault_status == 0 and "1 too large" in bomb.seen


def test_a_pickle_posing_as_weights_runs_no_code(faults):
    row = faults.pickle_as_weights()
    assert row.fault_status == 1 and row.lost == "none (no code ran)"
    assert "not a safetensors weights file" in row.seen


# ------------------------------------------------------------------ the parts


def test_failed_write_names_the_file_and_keeps_the_previous(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"previous")

    def full_disk(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match=r"file.bin: could not write \(No space left on device\)"):
        atomic_write(target, full_disk)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_weights_with_nan_are_never_written(tmp_path):
    model = sb.build("splitbrain", preset="small", width=0.125)
    with torch.no_grad():
        model.encoders[1].tower.layers.conv1[0].weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match="not written, encoders.1.*holds a NaN or infinity"):
        sb.save(model, tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_folders_find_gif_and_other_photo_formats(tmp_path):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    frames = [Image.fromarray(pixels).convert("P"), Image.new("P", (16, 12), 3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(pixels).save(tmp_path / "b.ppm")
    Image.fromarray(pixels).save(tmp_path / "c.tga")
    Image.fromarray(pixels).save(tmp_path / "d.jfif", format="JPEG")
    source = open_source(f"folder:{tmp_path}")
    assert len(source) == 4
    first_frame = np.array(frames[0].convert("RGB"))
    np.testing.assert_array_equal(source[0], first_frame)
    np.testing.assert_array_equal(source[1], pixels)
    np.testing.assert_array_equal(source[2], pixels)


def test_a_run_folder_error_says_which_file_why_and_what_to_do(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    full = OSError(errno.ENOSPC, "No space left on device", str(out / "config.yaml"))
    assert explain(out, full) == (
        f"{out}/config.yaml: No space left on device: free space on its disk, then run the same "
        "command again"
    )
    (out / "checkpoints" / "step-00000002.ckpt").touch()
    denied = WriteError.of(out / "weights.safetensors", PermissionError(errno.EACCES, "denied"))
    assert explain(out, denied).endswith(
        f"(denied): make {out} writable, then run the same command again to resume from its "
        "newest checkpoint"
    )
    assert explain(out, OSError(errno.ENOSPC, "full", str(tmp_path / "data.npz"))) is None
    assert explain(out, OSError(errno.ENOSPC, "full")) is None  # no file named
    shutil.rmtree(out)
    gone = FileNotFoundError(errno.ENOENT, "No such file", str(out / "tensorboard" / "events"))
    assert explain(out, gone).startswith(
        f"{out}: the run folder disappeared during the run ({out}/tensorboard/events: No such"
    )


def test_run_folder_faults_find_the_oserror_under_lightnings_valueerror(tmp_path):
    error = OSError(errno.EIO, "I/O error", str(tmp_path / "run" / "tb"))
    wrapped = ValueError("you tried to log 1.0 which is currently not supported")
    wrapped.__cause__ = error  # as ``raise ... from error`` makes it
    folder = run_folder_faults(tmp_path / "run")
    with (
        pytest.raises(RunFolderError, match="run/tb: I/O error: make sure .*run can be written"),
        folder,
    ):
        raise wrapped
    chosen = ValueError("a weights file that is not one")  # raised ``from None``: its own line
    chosen.__context__, chosen.__suppress_context__ = error, True
    with pytest.raises(ValueError, match="not one"), run_folder_faults(tmp_path / "run"):
        raise chosen
    data = FileNotFoundError(errno.ENOENT, "No such file", str(tmp_path / "data.npz"))
    with pytest.raises(FileNotFoundError), run_folder_faults(tmp_path / "run"):
        raise data  # not the run folder's: unchanged


def test_a_failed_runs_tensorboard_log_closes_without_raising(tmp_path, capsys):
    logs = [TensorBoardLog(tmp_path / name) for name in ("a", "b")]
    with quiet_third_parties():  # the command line's: no traceback from the writer thread
        for log in logs:
            log.log_metrics({"loss": 1.0}, step=1)
            log.experiment.flush()  # written, before its folder goes
            shutil.rmtree(Path(log.root_dir).parent)
            log.experiment.add_scalar("loss", 2.0, 2)  # its thread meets the missing folder
        logs[0].finalize("failed")  # quietly, so that Lightning goes on to end the loader workers
        with pytest.raises(FileNotFoundError, match="No such file or directory"):
            TensorBoardLogger.finalize(logs[1], "failed")  # where Lightning's own raises again
        for thread in threading.enumerate():  # their writer threads end inside the block
            if type(thread).__module__.startswith("tensorboard."):
                thread.join(timeout=10)
    assert "Traceback" not in capsys.readouterr().err
