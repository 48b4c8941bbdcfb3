"""Image files named on a command line: files, folders (recursive) and glob patterns, each with
the relative name its output keeps, so that a folder maps to a folder."""

from __future__ import annotations

import glob
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..data.badlog import count_listing
from ..data.folder import images_under, is_image
from ..errors import SettingError, literal

log = logging.getLogger("splitbrain.inference")


@dataclass(frozen=True)
class Input:
    """One image file, or an argument that named none (``problem`` says why)."""

    path: Path
    name: Path  # relative output name, without suffix changes
    problem: str | None = None


@dataclass
class FilesOutcome:
    """What a run over files did: outputs written, inputs seen, reasons for the skipped ones;
    ``verb`` says what was done to them."""

    verb: ClassVar[str] = "processed"
    out: Path | None = None  # the folder written to (beside the one asked for, to keep one)
    written: list[Path] = field(default_factory=list)
    inputs: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def skip(self, path: Path | str, reason: str, detail: str | None = None) -> None:
        """One line naming the input and why it is skipped; counted by reason."""
        log.warning("skipping %s: %s%s", path, reason, f" ({detail})" if detail else "")
        self.skipped[reason] += 1

    def summary(self) -> str:
        line = f"{self.verb} {len(self.written):,} of {self.inputs:,} images"
        if self.skipped:
            ranked = dict(self.skipped.most_common())
            line += f"; skipped {sum(ranked.values()):,}: {count_listing(ranked)}"
        return line


def _fixed_prefix(pattern: Path) -> Path:
    """The part of a glob pattern before its first wildcard: its matches are named from it."""
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _inside(path: Path, folders: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder) for folder in folders)


def find_inputs(arguments: list[str], outside: Sequence[Path] = ()) -> list[Input]:
    """Every image file the arguments name, in order and each once: a file as itself, a
    folder's images below it (by path, named relative to the folder), a glob pattern's image
    matches (named relative to the pattern's fixed part, so ``a/**/*.png`` keeps the tree).
    An argument that names nothing usable is kept as an ``Input`` with its ``problem``.
    Folders and patterns never yield files inside the folders ``outside`` (the outputs of
    an earlier run into a folder below its inputs)."""
    outside = [Path(folder).expanduser().resolve() for folder in outside]
    found: list[Input] = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir() and _inside(path, outside):
            problem = "the output folder or inside it (--out is never read as input)"
            found.append(Input(path, Path(path.name), problem))
        elif path.is_dir():
            files = [Path(f) for f in images_under(str(path))]
            files = [f for f in files if not _inside(f, outside)]
            found += [Input(f, f.relative_to(path)) for f in files]
            if not files:
                found.append(Input(path, Path(path.name), "no image files in folder"))
        elif path.is_file():
            found.append(Input(path, Path(path.name)))
        elif glob.has_magic(argument):
            matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
            matches = [m for m in matches if m.is_file() and is_image(m.name)]
            matches = [m for m in matches if not _inside(m, outside)]
            base = _fixed_prefix(path)
            found += [Input(m, m.relative_to(base)) for m in matches]
            if not matches:
                found.append(Input(path, Path(path.name), "no image file matches"))
        else:
            found.append(Input(path, Path(path.name), "no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for item in found:  # a file named twice (a folder and a glob in it) is colorized once
        key = item.path.resolve()
        if item.problem or key not in seen:
            unique.append(item)
            seen.add(key)
    return unique


def companion(target: Path, ending: str) -> Path:
    """A second output of the input whose output is ``target``: ``NAME-overlay.png``."""
    return target.with_name(f"{target.stem}{ending}")


def output_paths(
    inputs: list[Input],
    out: Path,
    suffix: str,
    what: str = "colorization",
    companions: Mapping[str, str] | None = None,
    reserved: Sequence[Path] = (),
) -> dict[Input, Path]:
    """The output file of every usable input: ``out / name`` with ``suffix``, and beside it
    one ``companion`` per ending of ``companions`` (ending: what it is). An output that would
    replace an input, another output or one of the run's ``reserved`` files is a SettingError
    of ``out`` naming both, raised before anything is written."""
    paths: dict[Input, Path] = {}
    taken = {Path(r).resolve(): f"the run's {Path(r).name}" for r in reserved}
    sources = {item.path.resolve(): item for item in inputs if not item.problem}
    for item in sources.values():
        target = out / item.name.with_suffix(suffix)
        extra = {companion(target, e): kind for e, kind in (companions or {}).items()}
        outputs = {target: what, **extra}
        for path, kind in outputs.items():
            key = path.resolve()
            if key == item.path.resolve():
                raise SettingError(
                    "out", f"{literal(item.path)} would be overwritten by its {kind}; choose "
                    "another {setting}", out,
                )  # fmt: skip
            clash = taken.get(key) or (f"the input {sources[key].path}" if key in sources else None)
            if clash:
                raise SettingError(
                    "out", literal(f"the {kind} of {item.path} would replace {clash} at "
                                   f"{path}; ") + "rename one of them, or write them into "
                    "different {setting} folders", out,
                )  # fmt: skip
            taken[key] = f"the {kind} of {item.path}"
        paths[item] = target
    return paths
