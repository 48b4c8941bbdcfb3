"""Result tables of the evaluations: printed, and written as JSON, markdown and a PNG plot.

One table is one metric (e.g. top-1 %) for several models (rows) across layers (columns), so
several weight files evaluated in one call share one table and one plot, one line per model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write


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


def plot(tables: list[Table], path: str | Path, title: str) -> Path:
    """One line per model (and per table when several are drawn), metric against layer.

    Uses matplotlib's Agg canvas directly, not pyplot: no display, no global backend switch.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = tables[0].columns
    figure = Figure(figsize=(max(5.0, 0.9 * len(columns) + 2.5), 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for table in tables:
        for name, values in table.rows.items():
            ys = [values.get(c, math.nan) for c in columns]
            label = name if len(tables) == 1 else f"{name} {table.metric}"
            axes.plot(range(len(columns)), ys, marker="o", label=label)
    axes.set_xticks(range(len(columns)), columns)
    axes.set_xlabel("layer")
    axes.set_ylabel(tables[0].metric if len(tables) == 1 else "accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


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
            lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2, default=str) + "\n"),
        ),
        "md": atomic_write(
            out / f"{stem}.md", lambda tmp: Path(tmp).write_text("\n".join(md) + "\n")
        ),
    }
    paths["png"] = plot(plotted or tables[:1], out / f"{stem}.png", title)
    return paths
