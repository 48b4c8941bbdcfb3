"""The README's command-line examples run as written, with small budgets added at the end (the
last value of an option wins), in a scratch folder beside the shared data."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from splitbrain.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
QUIET = ["--workers", "0", "--no-progress"]
#: Options appended per command so that each example takes seconds.
SMALL = {
    "pretrain": ["--batch-size", "8", "--max-items", "32", *QUIET],
    "probe": ["--epochs", "1", "--max-items", "64", "--batch-size", "32", *QUIET],
    "knn": ["--max-items", "64", "--batch-size", "32", *QUIET],
    "finetune": ["--epochs", "1", "--max-items", "64", "--batch-size", "32", *QUIET],
    "extract": ["--max-items", "16", *QUIET],
    "colorize": ["--no-progress"],
    "export": [],
    "segment": ["--max-items", "4", "--epochs", "1", "--batch-size", "2", "--resize", "48",
                "--crop", "40", *QUIET],
    "detect": ["--max-items", "4", "--epochs", "1", "--side", "48", *QUIET],
}  # fmt: skip


def readme_commands() -> list[list[str]]:
    """Every ``splitbrain ...`` line of the README's bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("#"):
                continue
            for part in line.split("&&"):
                words = shlex.split(part)
                if words[:1] == ["splitbrain"]:
                    commands.append(words[1:])
    return commands


def _placeholder(argument: str) -> bool:
    """A path the README leaves to the reader (the user's photos, a download folder)."""
    return "~/" in argument


def test_the_readme_has_the_examples_this_test_knows():
    assert [c[0] for c in readme_commands()] == [
        "pretrain", "colorize", "extract", "export", "app", "pretrain", "pretrain", "pretrain",
        "probe", "knn", "finetune", "segment", "detect",
    ]  # fmt: skip


def test_every_readme_example_runs(tmp_path, monkeypatch):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the README's examples use the shared data at {SHARED_DATA}")
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)  # ../shared/data, as in a checkout
    photos = work / "old_photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        grey = rng.integers(0, 256, (40, 60), dtype=np.uint8)
        Image.fromarray(grey).save(photos / f"{k}.jpg")
    monkeypatch.chdir(work)
    ran = []
    for command in readme_commands():
        if any(_placeholder(word) for word in command) or command[0] == "app":
            continue  # the page serves until stopped: tests/e2e/test_app.py drives it
        small = SMALL[command[0]]
        if command[0] == "pretrain":  # --steps and --epochs exclude each other: 2 steps either way
            small = [*small, *(["--epochs", "0.5"] if "--epochs" in command else ["--steps", "2"])]
        assert main([*command, *small]) == 0, command
        ran.append(command[0])
    assert ran == ["pretrain", "colorize", "extract", "export", "pretrain", "probe", "knn",
                   "finetune", "segment", "detect"]  # fmt: skip
    assert (work / "runs" / "probe" / "probe.json").exists()
    assert (work / "runs" / "segment" / "segment.json").exists()
    assert (work / "runs" / "detect" / "detect.json").exists()
    assert len(list((work / "coloured").iterdir())) == 2


def test_ci_runs_the_readmes_two_commands():
    """.ci/run is the README's first block, line for line, around its own settings."""
    first = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).splitlines()
    script = (README.parent / ".ci" / "run").read_text().splitlines()
    settings = ("#", "set ", "cd ", "export ")
    assert [line for line in script if line and not line.startswith(settings)] == first


def test_the_docs_name_no_path_of_a_particular_machine():
    docs = [README, *sorted((README.parent / "docs").rglob("*.md"))]
    machine = re.compile(r"(?<![\w.~])/(work|tmp|root|home|Users|data|scratch|mnt)/")
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in docs
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if machine.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_docs_name_no_issue_numbers():
    docs = [README, *sorted((README.parent / "docs").rglob("*.md"))]
    issue = re.compile(r"\bissues? \d+", re.IGNORECASE)
    found = [f"{path.name}:{number}: {line.strip()}" for path in docs
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if issue.search(line)]  # fmt: skip
    assert not found, "\n".join(found)
