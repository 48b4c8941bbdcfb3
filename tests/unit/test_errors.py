"""Errors about settings name them as the caller did: configuration fields in Python, flags on
the command line, translated in one place (``cli.flag``)."""

from __future__ import annotations

import pytest
import yaml

from splitbrain.cli import flag, main
from splitbrain.device import device_for
from splitbrain.errors import SettingError
from splitbrain.runs.recipe import RecipeError, check_recipe


def test_a_setting_error_names_the_field_in_python_and_the_flag_on_the_command_line():
    error = SettingError("sync_batchnorm", "needs GPUs; leave {setting} out", "on")
    assert str(error) == "sync_batchnorm on: needs GPUs; leave sync_batchnorm out"
    assert error.message(flag) == "--sync-batchnorm on: needs GPUs; leave --sync-batchnorm out"
    braces = SettingError("init_from", "not a network", "runs/{x}.safetensors")
    assert str(braces) == "init_from runs/{x}.safetensors: not a network"  # shown as it is


def test_an_unknown_device_names_the_setting_it_came_from():
    with pytest.raises(SettingError) as raised:
        device_for("tpu", "accelerator")
    assert str(raised.value) == "accelerator tpu: unknown device; choose cpu, gpu or auto"
    assert raised.value.message(flag).startswith("--accelerator tpu: unknown device")


def test_the_recipe_guard_names_fields_and_the_command_line_flags(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"lr": 0.1, "batch_size": 8}))
    with pytest.raises(RecipeError) as raised:
        check_recipe(tmp_path, {"lr": 0.2, "batch_size": 8}, True, ("lr", "batch_size"))
    error = raised.value
    assert "(lr 0.1 there, 0.2 now)" in str(error) and str(error).endswith("choose a new out")
    assert "(--lr 0.1 there, 0.2 now)" in error.message(flag)
    assert error.message(flag).endswith("choose a new --out")
    check_recipe(tmp_path, {"lr": 0.2, "batch_size": 8}, False, ("lr",))  # nothing to protect


def test_the_command_line_shows_a_library_setting_error_as_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["knn", "--weights", "gaussian:small", "gaussian:small", "--data", "skimage:"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("splitbrain knn: error: --weights: two rows named 'gaussian:small'")


def test_library_errors_that_name_a_setting_name_its_field_and_keep_other_braces(tmp_path):
    from splitbrain.data import DatasetError, open_source
    from splitbrain.inference.inputs import find_inputs, output_paths
    from splitbrain.rgbd import holdout_indices
    from splitbrain.runs.lock import RunLock, RunLockedError

    missing = DatasetError("a {b} c", ())  # names no setting: shown as written
    assert str(missing) == missing.message(flag) == "a {b} c"
    with pytest.raises(DatasetError) as raised:
        open_source(f"cifar10:{tmp_path / '{x}'}")
    assert "(or set download to fetch" in str(raised.value) and "{x}" in str(raised.value)
    assert "(or set --download to fetch" in raised.value.message(flag)
    with pytest.raises(SettingError) as raised:
        holdout_indices([10], "every:1")
    assert str(raised.value).startswith("holdout 'every:1': use a fraction like 0.15")
    assert raised.value.message(flag).startswith("--holdout 'every:1': use")
    with RunLock(tmp_path / "run"), pytest.raises(RunLockedError) as raised:
        RunLock(tmp_path / "run").__enter__()
    assert "or choose another out (if that process" in str(raised.value)
    assert "or choose another --out (if that process" in raised.value.message(flag)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(SettingError) as raised:
        output_paths(find_inputs([str(tmp_path / "a.png")]), tmp_path, ".png")
    assert raised.value.message(flag) == (
        f"--out {tmp_path}: {tmp_path / 'a.png'} would be overwritten by its colorization; "
        "choose another --out"
    )
