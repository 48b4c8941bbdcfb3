"""Result tables of the evaluations: printed, and written as JSON, markdown and a PNG plot.

One table is one metric (e.g. top-1 %) for several models (rows) across layers (columns), so
several weight files evaluated in one call share one table and one plot, one line per model (one
bar, when the table has one column).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_write
from ..jsontext import float_or_nan, json_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Table:
    """``rows[model][column]``: one metric, in percent; a model may lack some columns."""

    metric: str
    columns: list[str]
    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    def cell(self, model: str, column: str) -> str:
        value = self.rows[model].get(column)
        return "-" if value is None or math.isnan(value) else f"{value:.1f}"

    def text(self) -> str:
        """Aligned plain text for the terminal."""
        head = [self.metric, *self.columns]
        body = [[name, *(self.cell(name, c) for c in self.columns)] for name in self.rows]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        lines = [
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in [head, *body]
        ]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [
            f"| model | {' | '.join(self.columns)} |",
            "|---|" + "---:|" * len(self.columns),
        ]
        for name in self.rows:
            lines.append(f"| {name} | {' | '.join(self.cell(name, c) for c in self.columns)} |")
        return "\n".join(lines)


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib figure on the Agg canvas: no pyplot, so no display and no global backend
    switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    drawn = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(drawn)
    return drawn


def save_figure(drawn: Figure, path: str | Path, dpi: int = 120) -> Path:
    """``drawn`` as a PNG at ``path``, written atomically."""
    return atomic_write(path, lambda tmp: drawn.savefig(tmp, format="png", dpi=dpi))


def class_bars(
    values: dict[str, list[float]], classes: list[str], path: Path, title: str, metric: str
) -> Path:
    """Grouped bars: each class's ``metric`` (%) for each model; a missing bar is an
    undefined score."""
    drawn = new_figure(max(6.0, 0.55 * len(classes) * max(1, len(values)) ** 0.5 + 2), 4.0)
    axes = drawn.add_subplot()
    width = 0.8 / max(1, len(values))
    for k, (name, scores) in enumerate(values.items()):
        xs = np.arange(len(classes)) + (k - (len(values) - 1) / 2) * width
        axes.bar(xs, [0 if math.isnan(v) else v for v in scores], width, label=name)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_ylabel(metric)
    axes.set_ylim(0, 100)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    return save_figure(drawn, path, dpi=110)


def plot_figure(tables: list[Table], title: str) -> Figure:
    """The plot as a matplotlib figure: one line per model (and per table when several are
    drawn), metric against layer; one bar each when there is one column (a line of one point
    says nothing).

    """
    columns = tables[0].columns
    labels = [name if len(tables) == 1 else f"{name} {t.metric}" for t in tables for name in t.rows]
    rows = [row for t in tables for row in t.rows.values()]
    series = [[float_or_nan(row.get(c)) for c in columns] for row in rows]
    width = 0.9 * (len(labels) if len(columns) == 1 else len(columns)) + 2.5
    drawn = new_figure(max(5.0, width), 4.0)
    axes = drawn.add_subplot()
    if len(columns) == 1:
        heights = [ys[0] for ys in series]
        bars = axes.bar(range(len(labels)), heights, color=[f"C{k}" for k in range(len(labels))])
        axes.bar_label(bars, ["-" if math.isnan(h) else f"{h:.1f}" for h in heights])
        axes.set_xticks(range(len(labels)), labels)
        axes.set_xlabel(columns[0])
    else:
        for label, ys in zip(labels, series, strict=True):
            axes.plot(range(len(columns)), ys, marker="o", label=label)
        axes.set_xticks(range(len(columns)), columns)
        axes.set_xlabel("layer")
        axes.legend(fontsize="small")
    axes.set_ylabel(tables[0].metric if len(tables) == 1 else "accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3, axis="y" if len(columns) == 1 else "both")
    return drawn


def plot(tables: list[Table], path: str | Path, title: str) -> Path:
    """``plot_figure`` as a PNG at ``path``."""
    return save_figure(plot_figure(tables, title), path)


def write_report(
    out: str | Path,
    stem: str,
    title: str,
    tables: list[Table],
    meta: dict[str, Any],
    plotted: list[Table] | None = None,
) -> dict[str, Path]:
    """Write ``stem``.json (everything), .md (settings and tables) and .png (``plotted``,
    default the first table) into ``out``; returns the paths by suffix."""
    out = Path(out)
    record = {
        "title": title,
        **meta,
        "tables": [{"metric": t.metric, "columns": t.columns, "rows": t.rows} for t in tables],
    }
    settings = meta.get("settings", {})
    md = [f"# {title}", ""]
    md += [f"- {key}: {value}" for key, value in settings.items()]
    for table in tables:
        md += ["", f"## {table.metric}", "", table.markdown()]
    paths = {
        "json": atomic_write(
            out / f"{stem}.json",
            lambda tmp: Path(tmp).write_text(json_text(record, indent=2, default=str) + "\n"),
        ),
        "md": atomic_write(
            out / f"{stem}.md", lambda tmp: Path(tmp).write_text("\n".join(md) + "\n")
        ),
    }
    paths["png"] = plot(plotted or tables[:1], out / f"{stem}.png", title)
    return paths
