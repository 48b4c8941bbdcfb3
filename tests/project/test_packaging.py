"""The built wheel carries the licence, declared as current packaging expects (PEP 639)."""

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_contains_the_licence_file_and_expression(tmp_path):
    if int(version("setuptools").split(".")[0]) < 77:
        pytest.skip("PEP 639 licence metadata needs setuptools 77 or later to build")
    source = tmp_path / "source"  # a copy: building leaves build/ and *.egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "splitbrain", source / "splitbrain",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("splitbrain-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{info}/METADATA").decode()
        licence = archive.read(f"{info}/licenses/LICENSE").decode()
    assert licence == (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n")
    assert "License-Expression: MIT\n" in metadata and "License-File: LICENSE\n" in metadata
    assert "splitbrain/assets/ab_bins_313.csv" in names  # package data still ships
