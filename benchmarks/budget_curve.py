"""How the representation grows with pre-training: `splitbrain` after 1, 3, 10 and 30 epochs of
CIFAR-10 (the Table-2 recipe of paper_table.py otherwise), probed on conv1..conv5 beside
`gaussian` (random weights, which no budget changes).

    python benchmarks/budget_curve.py                  # about 2 hours on a quiet 2-core CPU
    python benchmarks/budget_curve.py --epochs 1 3     # some budgets now, the rest later

Resumable like paper_table.py: finished budgets are read back from the JSON, a stopped
pre-training resumes from its checkpoint. Every budget is a run of its own (its learning-rate
schedule spans its own length), not a snapshot of a longer one. Writes
benchmarks/results/budget_curve_cifar10.{json,md,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from splitbrain.atomic import atomic_write
from splitbrain.device import default_precision
from splitbrain.evaluate import LabelledData
from splitbrain.reproduce.paper_table import LAYERS, from_root, full_recipe, git_commit, run_row

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

EPOCHS = (1, 3, 10, 30)
TRAIN_IMAGES = 50_000


def row_key(epochs: float | None) -> str:
    return "gaussian" if epochs is None else f"splitbrain@{epochs:g}"


def markdown(rows: dict, recipe: dict) -> str:
    lines = [
        "| row | epochs | images seen | " + " | ".join(LAYERS) + " | pre-training |",
        "|---|---:|---:|" + "---:|" * (len(LAYERS) + 1),
    ]
    for key, row in sorted(rows.items(), key=lambda kv: kv[1]["epochs"] or 0):
        epochs = row["epochs"]
        seen = "-" if epochs is None else f"{epochs * TRAIN_IMAGES:,.0f}"
        cells = " | ".join(f"{row['top1'][layer]:.1f}" for layer in LAYERS)
        minutes = f"{row['pretrain_seconds'] / 60:.1f} min" if epochs else "-"
        lines.append(f"| `{key}` | {epochs or '-'} | {seen} | {cells} | {minutes} |")
    lines += ["", f"CIFAR-10 top-1 (%) of the cached linear probe; recipe: {recipe}."]
    return "\n".join(lines) + "\n"


def plot(rows: dict, path: Path) -> Path:
    """Top-1 against images seen, one line per layer; random weights as dashed levels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    trained = sorted((r for r in rows.values() if r["epochs"]), key=lambda r: r["epochs"])
    seen = [r["epochs"] * TRAIN_IMAGES for r in trained]
    for index, layer in enumerate(LAYERS):
        colour = f"C{index}"
        if trained:
            values = [r["top1"][layer] for r in trained]
            axes.plot(seen, values, marker="o", color=colour, label=f"splitbrain {layer}")
        if "gaussian" in rows:
            level = rows["gaussian"]["top1"][layer]
            axes.axhline(level, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
    axes.set_xscale("log")
    axes.set_xlabel("images seen in pre-training (CIFAR-10 epochs x 50,000)")
    axes.set_ylabel("linear probe top-1 (%)")
    axes.set_title("Quality against pre-training budget (dashed: random weights)")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize="small")
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=float, nargs="+", default=list(EPOCHS))
    p.add_argument("--json", type=Path, default=RESULTS / "budget_curve_cifar10.json")
    p.add_argument("--runs", type=Path, default=Path("runs") / "budget_curve")
    p.add_argument("--precision", choices=["32-true", "bf16-mixed"],
                   help="default: bf16-mixed where the CPU or GPU has it natively")  # fmt: skip
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.precision or default_precision(device)[0]
    base = dataclasses.replace(full_recipe(), precision=precision)
    shared = {k: v for k, v in base.as_dict().items() if k != "epochs"}
    rows: dict = {}
    if args.json.exists():
        record = json.loads(args.json.read_text())
        if record["recipe"] != json.loads(json.dumps(shared)):
            raise SystemExit(f"{args.json} holds another recipe ({record['recipe']}); use --json")
        rows = record["rows"]
    todo = [e for e in [None, *args.epochs] if row_key(e) not in rows]
    print(f"recipe: {shared}\nto do: {[row_key(e) for e in todo] or 'nothing'}")
    if todo:
        data = LabelledData.open(
            from_root(base.data, REPO),
            from_root(base.test_data, REPO),
            progress=not args.no_progress,
        )
    for epochs in todo:
        recipe = dataclasses.replace(base, epochs=epochs or base.epochs)
        name = "gaussian" if epochs is None else "splitbrain"
        print(f"\n=== {row_key(epochs)} ===")
        row = run_row(name, recipe, data, args.runs, not args.no_progress, args.workers, REPO)
        rows[row_key(epochs)] = {**row, "epochs": epochs}
        print(f"{row_key(epochs)}: " + ", ".join(f"{k} {v:.1f}" for k, v in row["top1"].items()))
        record = {"recipe": shared, "commit": git_commit(REPO), "rows": rows}
        text = json.dumps(record, indent=2) + "\n"
        atomic_write(args.json, lambda tmp, text=text: Path(tmp).write_text(text))
    md = markdown(rows, shared)
    atomic_write(args.json.with_suffix(".md"), lambda tmp: Path(tmp).write_text(md))
    plot(rows, args.json.with_suffix(".png"))
    print("\n" + md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
