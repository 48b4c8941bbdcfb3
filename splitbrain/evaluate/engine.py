"""One engine compares models on a task: several models in one run folder, one report.

A task (``Task``: the linear probe, kNN, fine-tuning, segmentation) says how to train and score
one model and what its report shows; ``compare`` does the rest, the same way for every task:

- the models: weights files and untrained baselines (``NAME=SPEC`` names a row), checked before
  any work (``check_models``); baselines built at the files' width and, where the task cuts its
  images at the networks' geometry, at the files' shared geometry (``match_baselines``);
- the run folder: ``config.yaml`` (the settings; a resume with other recipe settings is
  refused), ``run.lock`` while it runs, and per model ``models/NAME/``: ``model.txt`` (the
  model its row is made from), what the task keeps there (checkpoints, weights) and
  ``result.json`` once the row is done;
- resumable rows: the same command again skips the rows done and resumes the one that was
  interrupted; more models add rows; a name already given to another model is refused. Each
  model is seeded on its own (its baseline and its task take the seed), so a row does not
  depend on the others;
- the report, rewritten after every row: ``COMMAND.{json,md,png}`` and the task's pictures.
  The same comparison again on its finished folder does no work: its rows are read back and
  its report left as it is. A folder that holds a finished comparison made with other
  settings is kept, and a new folder made beside it (``outputs.keep_earlier``), unless
  ``overwrite``.

    task = ProbeTask(data, ProbeConfig(cache_features=True))
    comparison = compare(task, ["runs/sb/weights.safetensors", "gaussian:paper"], "runs/probe")
    print(comparison.tables[0].text())
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import yaml

from ..atomic import atomic_write
from ..errors import literal
from ..jsontext import json_text
from ..models import SplitBrain
from ..outputs import keep_earlier
from ..progress import SUMMARY
from ..runs.checkpoints import checkpoints
from ..runs.folder import run_folder_faults
from ..runs.lock import RunLock
from ..runs.recipe import RecipeError, changed_settings, check_recipe, saved_settings
from .baselines import check_models, match_baselines, open_model, split_name
from .data import LabelledData
from .report import Table, write_report

log = logging.getLogger("splitbrain.evaluate")

Row = TypeVar("Row")
#: The model a folder ``models/NAME/`` was made from (its spec without NAME=).
MODEL_RECORD = "model.txt"
RESULT = "result.json"


#: Configuration that says where and how a comparison computes, not what: never a setting.
MACHINE = ("workers", "accelerator", "progress", "cache_dir", "checkpoint_every")


def config_settings(config: Any) -> dict[str, Any]:
    """A task's configuration dataclass as settings: its fields but ``MACHINE``'s, tuples as
    lists (as config.yaml holds them)."""
    fields = dataclasses.asdict(config)
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in fields.items() if k not in MACHINE
    }


def safe_name(name: str) -> str:
    """A row's name as a file name."""
    return re.sub(r"[^\w.-]+", "_", name)


@dataclass(frozen=True)
class Entry:
    """One model of a comparison: the name of its row, the spec it is made from (a weights
    file or a baseline), and its own folder in the run folder."""

    name: str
    spec: str
    folder: Path

    @property
    def weights(self) -> Path:
        """Where a task that trains a network (fine-tuning, segmentation) saves it."""
        return self.folder / f"{safe_name(self.name)}.safetensors"


class Task(ABC, Generic[Row]):
    """How one model is trained and scored, and what the comparison's report shows.

    ``photos``: the images a baseline is initialised from. ``geometry``: the (crop, resize)
    its images are cut at, None where the networks' own; None for a task that cuts frames of
    its own size (segmentation): baselines then keep their preset's geometry.
    """

    command: ClassVar[str]  # names the report: COMMAND.json, .md, .png
    title: str  # the report's; a task may say there what it scored
    recipe: ClassVar[tuple[str, ...]]  # settings a resumed run may not change
    photos: LabelledData
    geometry: tuple[int | None, int | None] | None = (None, None)

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """What the results depend on, as ``config.yaml`` and the report record them."""

    @abstractmethod
    def evaluate(self, model: SplitBrain, entry: Entry) -> Row:
        """Train and score one model (resuming what ``entry.folder`` holds, if the task can)."""

    @abstractmethod
    def record(self, row: Row) -> dict[str, Any]:
        """A row as ``result.json`` holds it (valid JSON: no NaN)."""

    @abstractmethod
    def restore(self, record: dict[str, Any]) -> Row:
        """The row of an earlier run from its ``result.json``."""

    @abstractmethod
    def tables(self, rows: list[Row]) -> list[Table]:
        """The report's tables; the first is plotted unless ``plotted`` says otherwise."""

    def plotted(self, tables: list[Table]) -> list[Table]:
        return tables[:1]

    def summary(self, row: Row) -> str:
        """One line of a row's scores, logged when it is done."""
        return ""

    def pictures(self, out: Path, rows: list[Row], entries: list[Entry]) -> dict[str, Path]:
        """Pictures beside the report, by name (none by default)."""
        return {}

    def pictures_files(self) -> dict[str, str]:
        """The files ``pictures`` writes, by the names it returns them under."""
        return {}


@dataclass
class Comparison:
    """What ``compare`` made: the run folder, the rows in the order of the models, the
    report's tables and the paths of its files (json, md, png and the task's pictures)."""

    out: Path
    rows: list
    tables: list[Table]
    paths: dict[str, Path]


def entries(out: Path, specs: Sequence[str]) -> list[Entry]:
    """The models of ``specs`` with their folders in the run folder ``out``."""
    named = [split_name(spec) for spec in specs]
    return [Entry(name, spec, out / "models" / safe_name(name)) for name, spec in named]


def finished(out: Path, command: str, specs: Iterable[str] = ()) -> bool:
    """Whether ``out`` holds a comparison of ``command`` with a row for each model it was asked
    for and each of ``specs`` (a command that names a model the folder lacks adds it). A report
    without ``config.yaml`` (written before rows could resume) is finished."""
    config = out / "config.yaml"
    if not config.exists():
        return (out / f"{command}.json").exists()
    listed = [*(yaml.safe_load(config.read_text()) or {}).get("weights", []), *specs]
    return all((entry.folder / RESULT).exists() for entry in entries(out, listed))


def _check_models_in_folder(out: Path, specs: list[str]) -> None:
    """Refuse a name whose folder in ``out`` holds another model (RecipeError): its row there
    was made from that model, not from this command's."""
    listed = dict(map(split_name, (saved_settings(out) or {}).get("weights", [])))
    added = []
    for entry in entries(out, specs):
        if not entry.folder.is_dir():
            added.append(entry.name)
            continue
        record = entry.folder / MODEL_RECORD  # folders written before it: the config's list
        made_from = record.read_text() if record.exists() else listed.get(entry.name, entry.spec)
        if made_from != entry.spec:
            raise RecipeError(
                f"{literal(out)} holds a model named {literal(entry.name)} made from "
                f"{literal(made_from)}, not {literal(entry.spec)}: give this one another "
                "NAME= or choose a new {out}"
            )
    if added:
        log.info("%s: adding %s to its table", out, ", ".join(added))


def _start_again(out: Path, task: Task) -> None:
    report = [f"{task.command}.{suffix}" for suffix in ("json", "md", "png")]
    for name in ("models", "config.yaml", *report, *task.pictures_files().values()):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def _finished_comparison(task: Task[Row], out: Path, specs: Sequence[str]) -> Comparison:
    """The comparison a finished folder holds, read back: no model trained, no file written."""
    report = [f"{task.command}.{suffix}" for suffix in ("json", "md", "png")]
    paths = {Path(name).suffix[1:]: out / name for name in report}
    paths.update({key: out / name for key, name in task.pictures_files().items()})
    rows = [task.restore(json.loads((e.folder / RESULT).read_text())) for e in entries(out, specs)]
    log.info("%s: finished earlier, nothing to do; its report: %s", out, paths["md"])
    return Comparison(out, rows, task.tables(rows), paths)


def compare(
    task: Task[Row],
    specs: Sequence[str],
    out: str | Path,
    seed: int = 0,
    preset: str | None = None,
    overwrite: bool = False,
    on_report: Callable[[dict[str, Path]], None] | None = None,
) -> Comparison:
    """Evaluate each model of ``specs`` (weights files or baselines, ``NAME=SPEC``) by
    ``task`` in the run folder ``out``, resuming what an earlier run of the same comparison
    left there (``overwrite``: starting again from nothing); ``preset`` rebuilds weights
    files at another geometry. ``on_report`` is called with the report's paths after every
    row."""
    check_models(specs)
    specs, (crop, resize) = match_baselines(specs, preset, task.geometry)
    out = Path(out)
    settings = {**task.settings(), "weights": list(specs), "preset": preset}
    if not overwrite:

        def made_otherwise(folder: Path) -> bool:
            """A finished comparison with another recipe (or none recorded): kept."""
            changed = set(changed_settings(folder, settings)) & {*task.recipe, "preset"}
            recorded = (folder / "config.yaml").exists()
            return finished(folder, task.command, specs) and (bool(changed) or not recorded)

        out = keep_earlier(out, False, made_otherwise, f"{task.command} report")
        if finished(out, task.command, specs):
            return _finished_comparison(task, out, specs)
    trial = settings.get("max_items")
    title = task.title + (f", a trial on {trial:,} items" if trial else "")
    with run_folder_faults(out), RunLock(out):
        if overwrite:
            _start_again(out, task)
        models = out / "models"
        started = models.is_dir() and any(
            checkpoints(f / "checkpoints") or (f / RESULT).exists() for f in models.iterdir()
        )
        if started:
            _check_models_in_folder(out, list(specs))
        check_recipe(out, settings, started, (*task.recipe, "preset"), ("weights",))
        text = yaml.safe_dump(settings, sort_keys=False)
        atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(text))
        rows: list[Row] = []
        opened: list[Entry] = []
        records: list[dict[str, Any]] = []
        for entry in entries(out, specs):
            done = entry.folder / RESULT
            if done.exists():
                log.info("%s: done in an earlier run (%s)", entry.name, done)
                record = json.loads(done.read_text())
                row = task.restore(record)
            else:
                entry.folder.mkdir(parents=True, exist_ok=True)
                atomic_write(entry.folder / MODEL_RECORD,
                             lambda t, e=entry: Path(t).write_text(e.spec))  # fmt: skip
                start = time.perf_counter()
                model = open_model(entry.spec, task.photos, seed, preset, crop, resize)[1]
                seconds_to_open = time.perf_counter() - start
                row = task.evaluate(model, entry)
                record = {**task.record(row), "seconds to open": round(seconds_to_open, 1)}
                text = json_text(record, indent=1)
                atomic_write(done, lambda tmp, text=text: Path(tmp).write_text(text))
                shutil.rmtree(entry.folder / "checkpoints", ignore_errors=True)
            rows.append(row)
            opened.append(entry)
            records.append({"name": entry.name, "weights": entry.spec, **record})
            log.info("%s: %s", entry.name, task.summary(row), extra=SUMMARY)
            tables = task.tables(rows)
            meta = {
                "command": task.command,
                "settings": settings,
                "models": records,
            }
            paths = write_report(out, task.command, title, tables, meta, task.plotted(tables))
            paths.update(task.pictures(out, rows, opened))
            if on_report:
                on_report(paths)
        return Comparison(out, rows, tables, paths)
