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
