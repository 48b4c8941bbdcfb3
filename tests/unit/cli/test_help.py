"""Help that teaches: every option states its default, every command ends with examples, ranges
read as ranges, and one exit code per kind of mistake (1 bad input, 2 a misused option)."""

import argparse

import pytest

from splitbrain.cli import build_parser, main


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _in_a_required_group(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    return any(g.required and action in g._group_actions for g in parser._mutually_exclusive_groups)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_states_its_default_and_the_help_ends_with_examples(name):
    parser = _commands()[name]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.required:
            assert action.help, f"{name} {action.dest} has no help"
            continue  # positional, a flag (off unless given), or required
        assert action.help, f"{name} {'/'.join(action.option_strings)} has no help"
        if _in_a_required_group(parser, action):
            continue  # one of several that must be given
        text = formatter._get_help_string(action) % {"default": action.default}
        assert "default" in text, f"{name} {'/'.join(action.option_strings)}: {text!r}"
    help_text = parser.format_help()
    examples = help_text[help_text.index("\nexamples:\n") :].splitlines()[2:]
    assert examples and all(line.startswith("  splitbrain ") or line.startswith("      ")
                            for line in examples if line), examples  # fmt: skip
    assert any(line.startswith(f"  splitbrain {name} ") for line in examples)


def test_ranges_read_as_ranges_and_jpeg_is_jpg(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["colorize", "x.png", "--weights", "w", "--out", "o", "--quality", "100"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("argument --quality: must be a whole number 1-95, got 100")
    args = build_parser().parse_args(["colorize", "x", "--weights", "w", "--out", "o",
                                      "--format", "JPEG"])  # fmt: skip
    assert args.format == "jpg"
    assert "initialisation's seed (default: 0)" in " ".join(
        _commands()["pretrain"].format_help().split()
    )


def test_a_missing_file_is_bad_input_in_every_command(tmp_path, capsys):
    missing = str(tmp_path / "none.safetensors")
    commands = [
        ["info", missing],
        ["extract", "--weights", missing, "--data", "skimage:", "--out", str(tmp_path / "f.npz")],
        ["export", "--weights", missing, "--onnx", str(tmp_path / "f.onnx")],
        ["probe", "--weights", missing, "--data", "skimage:", "--out", str(tmp_path / "p")],
        ["colorize", str(tmp_path), "--weights", missing, "--out", str(tmp_path / "c")],
        ["import-caffe", str(tmp_path / "a.caffemodel"), "--prototxt", str(tmp_path / "b.txt"),
         "--out", str(tmp_path / "w.safetensors")],
    ]  # fmt: skip
    for argv in commands:
        assert main(argv) == 1, argv
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and "no such file" in error, (argv, error)
    assert "a.caffemodel: no such file" in (main(commands[-1]), capsys.readouterr().err)[1]


def test_the_demo_ends_by_suggesting_what_to_run_next(tmp_path, capsys):
    argv = ["pretrain", "--out", str(tmp_path / "demo"), "--steps", "2", "--batch-size", "4",
            "--max-items", "64", "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    weights = tmp_path / "demo" / "weights.safetensors"
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].startswith("next: colour photographs of your own")
    assert lines[-2:] == [
        f"  splitbrain colorize --weights {weights} PHOTOS --out coloured/",
        f"  splitbrain knn --weights {weights} gaussian:small --data skimage:",
    ]


@pytest.mark.parametrize("command", ["probe", "knn", "finetune", "segment"])
def test_a_baseline_with_an_unknown_preset_is_a_misused_option(command, tmp_path, capsys):
    argv = [command, "--weights", "base=gaussian:tiny", "--data", "masks:" if command == "segment"
            else "skimage:", "--out", str(tmp_path / "out")]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"splitbrain {command}: error: --weights gaussian:tiny: no preset 'tiny'; the presets "
        "are paper, transfer, small, caffe"
    ]
