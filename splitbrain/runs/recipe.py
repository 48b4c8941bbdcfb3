"""The recipe guard of a resumed run: a run folder made with other settings is not resumed.

A run folder's ``config.yaml`` records the settings it was made with. Resuming it with
settings that change the model or the sample stream would not continue that run, so those are
refused by name; every other setting may change between sittings, with a log line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from ..errors import NamesSettings, literal

log = logging.getLogger("splitbrain.runs")


class RecipeError(NamesSettings, ValueError):
    """A run folder holds a run made with settings that the new command changes. ``template``
    names settings as ``{field}`` (``NamesSettings``); ``settings`` lists those fields."""

    def __init__(self, template: str, settings: tuple[str, ...] = ()) -> None:
        super().__init__(template, (*settings, "out"))


def saved_settings(out: Path) -> dict | None:
    """The settings in ``out``'s config.yaml, or None when it holds no run."""
    saved = out / "config.yaml"
    return yaml.safe_load(saved.read_text()) if saved.exists() else None


def changed_settings(out: Path, now: dict, uncompared: tuple[str, ...] = ()) -> list[str]:
    """The settings of ``now`` whose values differ from those ``out``'s config.yaml holds
    (none when it holds no run)."""
    previous = saved_settings(out)
    if previous is None:
        return []
    return [k for k in now if k not in uncompared and previous.get(k) != now[k]]


def check_recipe(
    out: Path,
    now: dict,
    started: bool,
    recipe: tuple[str, ...],
    uncompared: tuple[str, ...] = (),
) -> None:
    """Refuse to resume a run folder whose run was made with another recipe (RecipeError,
    naming each setting with both values); log the settings that change and may. ``now``: the
    settings as config.yaml holds them; ``started``: whether the folder holds a checkpoint or
    a result; ``recipe``: the settings that may not change."""
    previous = saved_settings(out)
    if previous is None:
        return
    if not started:  # it stopped before its first checkpoint: nothing to resume or protect
        log.info("%s: no checkpoint yet; starting it again with this command's settings", out)
        return
    changed = changed_settings(out, now, uncompared)
    refused = [k for k in changed if k in recipe]
    if refused:
        listing = "; ".join(
            f"{{{k}}} {literal(previous.get(k))} there, {literal(now[k])} now" for k in refused
        )
        raise RecipeError(
            f"{literal(out)} holds a run made with other settings ({listing}): re-run the "
            f"command that made it to resume it (its settings are in "
            f"{literal(out / 'config.yaml')}), or choose a new {{out}}",
            tuple(refused),
        )
    for key in changed:
        log.info("%s: %s %s (was %s)", out, key, now[key], previous.get(key))


def check_length(out: Path, total_steps: int, done: int) -> None:
    """A resumed run keeps its length, except that a finished run may be extended; ``done``
    is the step of the checkpoint it resumes from."""
    previous = (saved_settings(out) or {}).get("total_steps")
    if previous is None or previous == total_steps or done == 0:
        return
    if done >= previous and total_steps > previous:
        log.info(
            "%s: extending the finished run from %d to %d steps (the learning-rate steps "
            "move with the new length)", out, previous, total_steps,
        )  # fmt: skip
        return
    raise RecipeError(
        f"{literal(out)} holds a run of {previous} steps (at step {done}); this command asks "
        f"for {total_steps}: a run's length changes its learning-rate schedule, so only a "
        "finished run may be extended. Re-run it with its own {steps}/{epochs}, or choose a "
        "new {out}",
        ("steps", "epochs"),
    )
