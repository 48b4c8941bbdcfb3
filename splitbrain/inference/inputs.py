"""Image files named on a command line: files, folders (recursive) and glob patterns, each with
the relative name its output keeps, so that a folder maps to a folder."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from ..data.folder import images_under, is_image


@dataclass(frozen=True)
class Input:
    """One image file, or an argument that named none (``problem`` says why)."""

    path: Path
    name: Path  # relative output name, without suffix changes
    problem: str | None = None


def find_inputs(arguments: list[str]) -> list[Input]:
    """Every image file the arguments name, in order: a file as itself, a folder's images below
    it (by path, named relative to the folder), a glob pattern's image matches (by name).
    An argument that names nothing usable is kept as an ``Input`` with its ``problem``."""
    found: list[Input] = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            files = [Path(f) for f in images_under(str(path))]
            found += [Input(f, f.relative_to(path)) for f in files]
            if not files:
                found.append(Input(path, Path(path.name), "no image files in folder"))
        elif path.is_file():
            found.append(Input(path, Path(path.name)))
        elif glob.has_magic(argument):
            matches = sorted(
                m for m in glob.glob(str(path), recursive=True) if is_image(Path(m).name)
            )
            found += [Input(Path(m), Path(Path(m).name)) for m in matches]
            if not matches:
                found.append(Input(path, Path(path.name), "no image file matches"))
        else:
            found.append(Input(path, Path(path.name), "no such file or directory"))
    return found


def output_paths(inputs: list[Input], out: Path, suffix: str) -> dict[Input, Path]:
    """The output file of every usable input: ``out / name`` with ``suffix``. Two inputs that
    would write the same file are a ValueError naming both."""
    paths: dict[Input, Path] = {}
    seen: dict[Path, Input] = {}
    for item in inputs:
        if item.problem:
            continue
        target = out / item.name.with_suffix(suffix)
        if target in seen:
            raise ValueError(
                f"{seen[target].path} and {item.path} would both be written to {target}; "
                "colorize them into different --out folders"
            )
        seen[target] = item
        paths[item] = target
    return paths
