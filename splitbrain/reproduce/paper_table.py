"""The paper's Table 2 reproduced: every variant pre-trained on the same budget, then the
linear probe on conv1..conv5 (and kNN where the recipe asks), beside the paper's ImageNet
numbers, with a verdict on each of its claims.

A table is a JSON of finished rows (resumable: rows done are read back, a stopped pre-training
resumes from its checkpoint; another recipe is refused), with a markdown table and a PNG plot
beside it. Relative data paths in a recipe are from ``root`` (the repository root for the
committed tables), so a table moves with its clone. ``benchmarks/paper_table.py`` runs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from ..atomic import atomic_write
from ..evaluate import DEFAULT_LAYERS as LAYERS
from ..evaluate import (
    KNNConfig,
    LabelledData,
    ProbeConfig,
    Table,
    build_baseline,
    knn_evaluate,
    linear_probe,
)
from ..evaluate.report import plot
from ..jsontext import json_text
from ..runs.checkpoints import checkpoints
from ..train import TrainConfig, pretrain
from ..weights import load

log = logging.getLogger("splitbrain.reproduce")

CIFAR = "../shared/data/cifar10"  # relative paths in a recipe are from the root
IMAGENETTE = "../shared/data/imagenette"
DEEP = ("conv3", "conv4", "conv5")

# Table 2 of the paper (SPEC section 3): row key, the paper's name, ImageNet top-1 conv1..conv5.
PAPER = {
    "gaussian": ("Gaussian", (11.6, 17.1, 16.9, 16.3, 14.1)),
    "kraehenbuehl": ("Krähenbühl", (17.5, 23.0, 24.5, 23.2, 20.6)),
    "lab2lab": ("Lab→Lab", (12.9, 20.1, 18.5, 15.1, 11.5)),
    "lab2lab-drop50": ("Lab(drop50)→Lab", (12.1, 20.4, 19.7, 16.1, 12.3)),
    "l2ab-cl": ("L→ab (cl)", (12.5, 25.4, 32.4, 33.1, 32.0)),
    "l2ab-reg": ("L→ab (reg)", (12.3, 23.5, 29.6, 31.1, 30.1)),
    "ab2l-cl": ("ab→L (cl)", (11.6, 19.2, 22.6, 21.7, 19.2)),
    "ab2l-reg": ("ab→L (reg)", (11.5, 19.4, 23.5, 23.9, 21.7)),
    "joint": ("(L,ab)→(ab,L)", (15.1, 22.6, 24.4, 23.2, 21.1)),
    "joint-full": ("(L,ab,Lab)→(ab,L,Lab)", (15.4, 22.9, 24.0, 22.0, 18.9)),
    "ensemble-l2ab": ("Ensembled L→ab", (11.7, 23.7, 30.9, 32.2, 31.3)),
    "splitbrain-reg": ("Split-Brain (reg,reg)", (17.4, 27.9, 33.6, 34.2, 32.3)),
    "splitbrain": ("Split-Brain (cl,cl)", (17.7, 29.3, 35.4, 35.2, 32.8)),
}
BASELINES = {"gaussian", "kraehenbuehl"}  # untrained rows, named by their initialisation
QUICK_ROWS = ("gaussian", "l2ab-cl", "ab2l-cl", "splitbrain")
IMAGENETTE_ROWS = ("gaussian", "kraehenbuehl", "l2ab-cl", "ab2l-cl", "splitbrain")
KNN_K = 20
AUTOENCODER_SLACK = 2.0  # points above gaussian that still count as "near random init"


class TableError(ValueError):
    """A table that cannot be built as asked: rows that Table 2 does not have, or a results
    file of another recipe."""


@dataclass(frozen=True)
class Recipe:
    """What every row of one table shares and the command line may change; everything else
    is the defaults of TrainConfig and ProbeConfig (the probe in cached mode), recorded in the
    JSON. Relative data paths are from the repository root, so a table moves with its clone."""

    data: str
    test_data: str | None
    preset: str = "small"
    width: float = 0.5
    epochs: float = 3.0
    batch_size: int = 128
    lr: float = 1e-3
    probe_epochs: int = 30
    probe_batch_size: int = 256
    seed: int = 0
    # Pre-training and the probe's trunk. fp32, the precision the committed tables were made
    # at, is left out of the record, so those tables still resume; bf16-mixed is a recipe of
    # its own (its own runs and JSON).
    precision: str = "32-true"
    resize: int | None = None  # shorter side before the crops; None: the preset's
    resize_max: int | None = None  # pre-training's scale jittering: shorter side resize..this
    knn: bool = False  # also score every layer by kNN (k=20), beside the linear probe
    init: str = "gaussian"  # pre-training's initialisation (kraehenbuehl: the paper's)

    def as_dict(self) -> dict:
        """The recipe's record; fields at the values of the committed CIFAR-10 tables (which
        predate them) are left out, so those tables still resume."""
        record = dataclasses.asdict(self)
        legacy = {
            "precision": "32-true", "resize": None, "resize_max": None, "knn": False,
            "init": "gaussian",
        }  # fmt: skip
        for name, value in legacy.items():
            if record[name] == value:
                del record[name]
        return record

    def key(self) -> str:
        """A short fingerprint: runs of different recipes never share a run folder."""
        text = json_text(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def from_root(spec: str | None, root: Path) -> str | None:
    """A data spec with a relative path made absolute from ``root``."""
    if not spec:
        return spec
    kind, _, path = spec.partition(":")
    if not path or Path(path).expanduser().is_absolute():
        return spec
    return f"{kind}:{(root / path).resolve()}"


def full_recipe() -> Recipe:
    return Recipe(data=f"folder:{CIFAR}", test_data=None)


def quick_recipe() -> Recipe:
    return Recipe(
        data=f"npz:{CIFAR}/exact_train.npz",
        test_data=f"npz:{CIFAR}/exact_test.npz",
        epochs=15.0,
    )


def imagenette_recipe() -> Recipe:
    """The 2,000 `train` photographs at the paper's geometry; the probe is scored on the 600
    `val` photographs. They are 160 px, so they are upscaled to 200 before the 180 px crops
    (docs/results/representation.md, "Real photographs at the paper's geometry", says why).
    Pre-training starts from the Krähenbühl initialisation, as the paper's did."""
    return Recipe(
        data=f"folder:{IMAGENETTE}",
        test_data=None,
        preset="paper",
        width=0.5,
        epochs=30.0,
        batch_size=64,
        lr=1e-3,  # not the paper's 3e-5: docs/results/representation.md, "the diagnosis"
        probe_epochs=100,
        precision="bf16-mixed",
        resize=200,
        knn=True,
        init="kraehenbuehl",  # the paper's; from Gaussian weights: the diagnosis (docs/results/)
    )


def git_commit(root: Path) -> str:
    """The commit ``root`` is checked out at (``+dirty`` with changes), else "unknown"."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{sha}{'+dirty' if dirty else ''}" if sha else "unknown"


def read_results(path: Path, recipe: Recipe) -> dict:
    """The finished rows of an earlier run of the same recipe; a different recipe is an error
    (its rows would not be comparable)."""
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    if record.get("recipe") != json.loads(json_text(recipe.as_dict())):
        raise TableError(
            f"{path} holds a table for a different recipe ({record.get('recipe')}); "
            "pass --json with another path, or delete it to start over"
        )
    return record.get("rows", {})


class WallClock(Callback):
    """Seconds of earlier sittings of a pre-training, kept in its checkpoints (Lightning saves
    and restores a callback's state), so a resumed row reports its whole time."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.earlier = 0.0

    def seconds(self) -> float:
        return self.earlier + time.perf_counter() - self.start

    def state_dict(self) -> dict:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.earlier = state_dict["seconds"]


def train_config(
    row: str, recipe: Recipe, out: Path, progress: bool, workers: int, root: Path = Path(".")
) -> TrainConfig:
    return TrainConfig(
        data=from_root(recipe.data, root),
        out=str(out),
        variant=row,
        preset=recipe.preset,
        width=recipe.width,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        resize=recipe.resize,
        resize_max=recipe.resize_max,
        init=recipe.init,
        seed=recipe.seed,
        progress=progress,
        workers=workers,
        precision=recipe.precision,
    )


def pretrain_row(
    row: str, recipe: Recipe, runs: Path, progress: bool, workers: int, root: Path = Path(".")
) -> tuple[Path, dict]:
    out = runs / recipe.key() / row
    resumed = bool(checkpoints(out / "checkpoints"))
    clock = WallClock()
    config = train_config(row, recipe, out, progress, workers, root)
    weights = pretrain(config, callbacks=[clock])
    return weights, {"pretrain_seconds": clock.seconds(), "resumed": resumed}


def probe_config(recipe: Recipe, progress: bool = False, workers: int = 2) -> ProbeConfig:
    return ProbeConfig(
        layers=LAYERS,
        epochs=recipe.probe_epochs,
        batch_size=recipe.probe_batch_size,
        cache_features=True,
        resize=recipe.resize,
        seed=recipe.seed,
        precision=recipe.precision,
        progress=progress,
        workers=workers,
    )


def settings(recipe: Recipe) -> dict:
    """The full pre-training and probe settings a recipe expands to (the JSON's record)."""
    train = dataclasses.asdict(train_config("splitbrain", recipe, Path("."), False, 2))
    probe = dataclasses.asdict(probe_config(recipe))
    drop = ("data", "out", "variant", "progress", "workers")
    return {
        "pretrain": {k: v for k, v in train.items() if k not in drop},
        "probe": {k: v for k, v in probe.items() if k not in ("progress", "workers", "cache_dir")},
    }


def run_row(
    row: str,
    recipe: Recipe,
    data: LabelledData,
    runs: Path,
    progress: bool,
    workers: int = 2,
    root: Path = Path("."),
) -> dict:
    """Pre-train (unless a baseline) and probe one row; returns its JSON record."""
    record: dict = {"pretrain_seconds": 0.0}
    if row in BASELINES:
        model = build_baseline(
            row, recipe.preset, recipe.width, data, recipe.seed, resize=recipe.resize
        )
    else:
        weights, timing = pretrain_row(row, recipe, runs, progress, workers, root)
        record.update(timing)
        model = load(weights)
    result = linear_probe(model, data, probe_config(recipe, progress, workers), name=row)
    if recipe.knn:
        config = KNNConfig(
            tuple(LAYERS), (KNN_K,), workers=workers, resize=recipe.resize,
            precision=recipe.precision,
        )  # fmt: skip
        knn = knn_evaluate(model, data, config, name=row)
        record["knn_top1"] = knn.top1[KNN_K]
    record.update(
        top1=result.top1,
        probe_seconds=result.seconds["total"],
        probe_train_items=result.train_items,
        probe_test_items=result.test_items,
        commit=git_commit(root),
        finished=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    return record


def claims(rows: dict, order: list[str] | None = None) -> list[tuple[str, str]]:
    """Each of the paper's claims with our verdict and margin; 'pending' while rows of the
    table (``order``, default all) are missing. Margins are in points of top-1 at
    conv3..conv5 (the deep layers)."""
    table = set(order or PAPER)

    def missing(needed: list[str]) -> str | None:
        if all(r in rows for r in needed):
            return None
        absent = [r for r in needed if r not in table]
        return f"not in this table ({', '.join(absent)})" if absent else "pending"

    def deep(row: str) -> list[float]:
        return [rows[row]["top1"][layer] for layer in DEEP]

    def beats(winner: str, rivals: list[str]) -> str:
        if gap := missing([winner, *rivals]):
            return gap
        margins = [w - max(deep(r)[i] for r in rivals) for i, w in enumerate(deep(winner))]
        verdict = "reproduced" if min(margins) >= 0 else "not reproduced"
        detail = ", ".join(f"{layer} {m:+.1f}" for layer, m in zip(DEEP, margins, strict=True))
        return f"{verdict} (margin over the best rival: {detail})"

    def near_random() -> str:
        rows_needed = ["gaussian", "lab2lab", "lab2lab-drop50"]
        if gap := missing(rows_needed):
            return gap
        gains = {
            r: [rows[r]["top1"][c] - rows["gaussian"]["top1"][c] for c in ("conv4", "conv5")]
            for r in rows_needed[1:]
        }
        ok = all(g <= AUTOENCODER_SLACK for gs in gains.values() for g in gs)
        detail = "; ".join(f"{r} {gs[0]:+.1f} / {gs[1]:+.1f}" for r, gs in gains.items())
        verdict = "reproduced" if ok else "not reproduced"
        return f"{verdict} (gain over gaussian at conv4 / conv5: {detail})"

    others = ["l2ab-cl", "ab2l-cl", "joint", "joint-full", "ensemble-l2ab", "splitbrain-reg"]
    return [
        ("split-brain (cl,cl) beats random weights (Gaussian)", beats("splitbrain", ["gaussian"])),
        (
            "split-brain (cl,cl) beats its halves and every other aggregation",
            beats("splitbrain", others),
        ),
        (
            "split-brain (cl,cl) beats its halves (L→ab cl, ab→L cl)",
            beats("splitbrain", ["l2ab-cl", "ab2l-cl"]),
        ),
        ("cl beats reg for L→ab", beats("l2ab-cl", ["l2ab-reg"])),
        ("L→ab beats ab→L (cl)", beats("l2ab-cl", ["ab2l-cl"])),
        (
            f"autoencoders stay near random init in conv4/conv5 (within {AUTOENCODER_SLACK:g} "
            "points of gaussian)",
            near_random(),
        ),
    ]


def dataset_name(recipe: Recipe) -> str:
    return "Imagenette" if IMAGENETTE in recipe.data else "CIFAR-10"


def markdown(rows: dict, recipe: Recipe, order: list[str]) -> str:
    """Table 2 layout: our top-1 beside the paper's ImageNet top-1, best of ours in bold per
    layer, then kNN where the recipe has it, times and the claims."""
    done = [r for r in order if r in rows]
    best = {c: max((rows[r]["top1"][c] for r in done), default=math.nan) for c in LAYERS}

    def ours(row: str, layer: str) -> str:
        if row not in rows:
            return "…"
        value = rows[row]["top1"][layer]
        return f"**{value:.1f}**" if value == best[layer] else f"{value:.1f}"

    ours_head = " | ".join(LAYERS)
    paper_head = " | ".join(f"paper {layer}" for layer in LAYERS)
    lines = [
        f"| row | paper's name | {ours_head} | {paper_head} |",
        "|---|---|" + "---:|" * 10,
    ]
    for row in order:
        name, paper = PAPER[row]
        cells = [ours(row, layer) for layer in LAYERS] + [f"{v:.1f}" for v in paper]
        lines.append(f"| `{row}` | {name} | {' | '.join(cells)} |")
    knn_rows = [r for r in done if "knn_top1" in rows[r]]
    if knn_rows:
        lines += ["", f"| row | kNN k={KNN_K} " + " | ".join(LAYERS) + " |", "|---|" + "---:|" * 5]
        for row in knn_rows:
            cells = " | ".join(f"{rows[row]['knn_top1'][layer]:.1f}" for layer in LAYERS)
            lines.append(f"| `{row}` | {cells} |")
    lines += ["", "| row | pre-training | probe |", "|---|---:|---:|"]
    for row in done:
        pre, probe = rows[row]["pretrain_seconds"], rows[row]["probe_seconds"]
        resumed = " (resumed)" if rows[row].get("resumed") else ""
        lines.append(f"| `{row}` | {pre / 60:.1f} min{resumed} | {probe / 60:.1f} min |")
    lines += ["", "| claim | verdict |", "|---|---|"]
    lines += [f"| {claim} | {verdict} |" for claim, verdict in claims(rows, order)]
    lines += [
        "",
        f"Ours: {dataset_name(recipe)} top-1 (%), {recipe}. Paper: ImageNet top-1 (%), Table 2.",
    ]
    return "\n".join(lines) + "\n"


def write_json(path: Path, recipe: Recipe, rows: dict, order: list[str], root: Path) -> None:
    record = {
        "recipe": recipe.as_dict(),
        "commit": git_commit(root),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "settings": settings(recipe),
        "layers": list(LAYERS),
        "paper_imagenet": {row: dict(zip(LAYERS, PAPER[row][1], strict=True)) for row in PAPER},
        "rows": rows,
        "claims": dict(claims(rows, order)),
    }
    atomic_write(path, lambda tmp: Path(tmp).write_text(json_text(record, indent=2) + "\n"))


def write_report(path: Path, recipe: Recipe, rows: dict, order: list[str]) -> None:
    """The markdown table and the PNG beside the JSON, drawn from its rows."""
    md = path.with_suffix(".md")
    atomic_write(md, lambda tmp: Path(tmp).write_text(markdown(rows, recipe, order)))
    done = [r for r in order if r in rows]
    if done:
        table = Table("top-1 (%)", list(LAYERS), {r: rows[r]["top1"] for r in done})
        tables = [table]
        knn_rows = [r for r in done if "knn_top1" in rows[r]]
        if knn_rows:
            knn = {r: rows[r]["knn_top1"] for r in knn_rows}
            tables.append(Table(f"kNN k={KNN_K} top-1 (%)", list(LAYERS), knn))
        title = f"Linear probes on {dataset_name(recipe)} after pre-training"
        plot(tables, path.with_suffix(".png"), title)


def chosen_rows(rows: str | None, default: tuple[str, ...] | list[str]) -> list[str]:
    """The rows of ``rows`` ("a,b,c", in that order, each once), else ``default``; a name
    that is not a row of Table 2 is a TableError naming the rows there are."""
    if rows is None:
        return list(default)
    wanted = list(dict.fromkeys(r.strip() for r in rows.split(",") if r.strip()))
    unknown = [r for r in wanted if r not in PAPER]
    if unknown or not wanted:
        named = ", ".join(unknown) if unknown else "none given"
        raise TableError(f"rows: unknown {named}; choose from {', '.join(PAPER)}")
    return wanted


def build_table(
    recipe: Recipe,
    wanted: list[str],
    path: Path,
    runs: Path,
    root: Path = Path("."),
    progress: bool = True,
    workers: int = 2,
) -> tuple[dict, list[str]]:
    """Run the ``wanted`` rows that ``path`` does not hold yet, writing the JSON after every
    row (the state a resume reads), then its markdown and PNG; returns (rows, their order)."""
    rows = read_results(path, recipe)
    # The four key rows first: a table cut short by the end of a sitting still compares them.
    todo = sorted((r for r in wanted if r not in rows), key=lambda r: r not in QUICK_ROWS)
    # The report shows every row of the table, not only those asked for this time.
    order = [r for r in PAPER if r in wanted or r in rows]
    log.info("recipe: %s\nrows done: %d of %d", recipe, len(wanted) - len(todo), len(wanted))
    if todo:
        data = LabelledData.open(
            from_root(recipe.data, root), from_root(recipe.test_data, root), progress=progress
        )
        for row in todo:
            log.info("\n=== %s ===", row)
            rows[row] = run_row(row, recipe, data, runs, progress, workers, root)
            top1 = ", ".join(f"{k} {v:.1f}" for k, v in rows[row]["top1"].items())
            log.info("%s: %s", row, top1)
            write_json(path, recipe, rows, order, root)
    write_report(path, recipe, rows, order)
    return rows, order
