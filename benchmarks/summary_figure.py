"""The results at a glance: one picture of split-brain against random weights.

For every data set and pre-training budget measured, the linear probe's top-1 at conv3, conv4
and conv5 of `splitbrain` beside `gaussian` (random weights at the same geometry), and beside
the two halves, L->ab and ab->L, where they were measured. Every number is read from the
committed JSON results under benchmarks/results/ (nothing is trained or probed here); the
script prints the table it drew and writes benchmarks/results/summary.png.

    python benchmarks/summary_figure.py
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = ("conv3", "conv4", "conv5")

# What a bar is, in drawing order: (role, legend label, colour).
ROLES = (
    ("random", "random weights (gaussian)", "#9e9e9e"),
    ("splitbrain", "split-brain", "#1f77b4"),
    ("l2ab", "L→ab half", "#ff7f0e"),
    ("ab2l", "ab→L half", "#2ca02c"),
)


@dataclass(frozen=True)
class Panel:
    """One group of bars: a data set at one budget, and where its numbers are."""

    title: str  # data set and geometry
    budget: str  # pre-training budget, "{epochs}" filled from the JSON where it records them
    path: str  # JSON file under benchmarks/results/
    rows: dict[str, str]  # role -> row name in that file


#: The rows of a table that has both halves beside split-brain and random weights.
WITH_HALVES = {
    "random": "gaussian",
    "splitbrain": "splitbrain",
    "l2ab": "l2ab-cl",
    "ab2l": "ab2l-cl",
}

PANELS = (
    Panel(
        "CIFAR-10, 32 px",
        "{epochs} epoch",
        "budget_curve_cifar10.json",
        {"random": "gaussian", "splitbrain": "splitbrain@1"},
    ),
    Panel(
        "CIFAR-10, 32 px (Table 2)",
        "{epochs} epochs",
        "paper_table_cifar10.json",
        WITH_HALVES,
    ),
    Panel(
        "CIFAR-10, 32 px",
        "{epochs} epochs",
        "budget_curve_cifar10.json",
        {"random": "gaussian", "splitbrain": "splitbrain@10"},
    ),
    Panel(
        "CIFAR-10, 32 px",
        "{epochs} epochs",
        "budget_curve_cifar10.json",
        {"random": "gaussian", "splitbrain": "splitbrain@30"},
    ),
    Panel(
        "CIFAR-10, 32 px, augmented probe",
        "30 epochs",
        "cifar10_augmented_probe_30epochs/probe.json",
        {"random": "gaussian", "splitbrain": "splitbrain@30"},
    ),
    Panel(
        "CIFAR-10 → Imagenette, 64 px",
        "10 epochs of CIFAR-10",
        "cross_dataset/cifar10_to_imagenette_probe/probe.json",
        {"random": "gaussian", "splitbrain": "splitbrain-cifar10"},
    ),
    Panel(
        "Imagenette → CIFAR-10, 64 px",
        "100 epochs of Imagenette",
        "cross_dataset/imagenette_kinit_to_cifar10_probe/probe.json",
        {"random": "gaussian", "splitbrain": "splitbrain-imagenette-100ep"},
    ),
    Panel(
        "Imagenette, 180 px",
        "{epochs} epochs",
        "paper_table_imagenette.json",
        WITH_HALVES,
    ),
    Panel(
        "Imagenette, 180 px",
        "{epochs} epochs",
        "paper_table_imagenette_100epochs.json",
        WITH_HALVES,
    ),
    Panel(
        "Imagenette, 180 px",
        "{epochs} epochs (halves not run)",
        "paper_table_imagenette_200epochs.json",
        {"random": "gaussian", "splitbrain": "splitbrain"},
    ),
)


def read_panel(panel: Panel, results: Path) -> tuple[str, dict[str, dict[str, float]]]:
    """The panel's budget label and, per role, the probe's top-1 (%) at conv3..conv5."""
    data = json.loads((results / panel.path).read_text())
    if "tables" in data:  # a `splitbrain probe` report: its first table is the top-1
        table = data["tables"][0]["rows"]
        scores = {role: table[name] for role, name in panel.rows.items()}
        epochs = None
    else:  # a paper_table.py / budget_curve.py file
        rows = data["rows"]
        scores = {role: rows[name]["top1"] for role, name in panel.rows.items()}
        epochs = rows[panel.rows["splitbrain"]].get("epochs") or data["recipe"].get("epochs")
    budget = panel.budget.format(epochs=f"{epochs:g}") if epochs is not None else panel.budget
    top1 = {role: {layer: float(s[layer]) for layer in LAYERS} for role, s in scores.items()}
    return budget, top1


def draw(panels: list[tuple[Panel, str, dict[str, dict[str, float]]]], out: Path) -> None:
    """Grouped bars, one panel per data set and budget, written with the Agg canvas."""
    columns = 5
    lines = -(-len(panels) // columns)
    figure = Figure(figsize=(3.3 * columns, 3.3 * lines + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(lines, columns, sharey=True, squeeze=False).ravel()
    for ax, (panel, budget, scores) in zip(axes, panels, strict=False):
        present = [(role, label, colour) for role, label, colour in ROLES if role in scores]
        width = min(0.32, 0.8 / len(present))
        for i, (role, label, colour) in enumerate(present):
            offset = (i - (len(present) - 1) / 2) * width
            xs = [x + offset for x in range(len(LAYERS))]
            values = [scores[role][layer] for layer in LAYERS]
            bars = ax.bar(xs, values, width, color=colour, label=label)
            if role in ("random", "splitbrain"):
                ax.bar_label(bars, fmt="%.1f", fontsize=6.5, padding=1, rotation=90)
        ax.set_xticks(range(len(LAYERS)), LAYERS)
        ax.set_title(f"{panel.title}\n{budget}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    low = min(v for _, _, s in panels for r in s.values() for v in r.values())
    high = max(v for _, _, s in panels for r in s.values() for v in r.values())
    axes[0].set_ylim(10 * (low // 10), high + 8)
    for ax in axes[::columns]:
        ax.set_ylabel("linear probe top-1 (%)")
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=9)
    figure.suptitle(
        "Split-brain against random weights and its halves: linear probe top-1 at conv3 to conv5"
        " (cached probe unless marked)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files")
    parser.add_argument("--out", type=Path, default=RESULTS / "summary.png")
    args = parser.parse_args(argv)
    panels = [(panel, *read_panel(panel, args.results)) for panel in PANELS]
    print("| data set | budget | model | " + " | ".join(LAYERS) + " | source |")
    print("|---|---|---|" + "---:|" * len(LAYERS) + "---|")
    for panel, budget, scores in panels:
        for role, label, _ in ROLES:
            if role in scores:
                cells = " | ".join(f"{scores[role][layer]:.1f}" for layer in LAYERS)
                print(f"| {panel.title} | {budget} | {label} | {cells} | {panel.path} |")
    draw(panels, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
