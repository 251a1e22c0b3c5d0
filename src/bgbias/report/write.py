"""Report files: a table of evaluation results with its bar chart (``bgbias report --out``),
and bgbias's numbers beside published ones with their agreement chart (``--compare``).

The one module that joins the tables, the comparison and the figures; those three never import
one another."""

from __future__ import annotations

import os
from pathlib import Path

from ..io import atomic_write, write_text
from .figures import agreement_chart, bar_chart
from .format import METRIC_TITLES
from .published import QUANTITIES, TITLES, Comparison, as_points, compare
from .published import to_csv as comparison_csv
from .published import to_latex as comparison_latex
from .published import to_markdown as comparison_markdown
from .tables import FORMATS, SUFFIXES, Table


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


def table_figure(table: Table, path: str | os.PathLike) -> Path:
    """The table as a bar chart: per dataset, each model's clean and replaced-background
    metric x 100 (error bar: std over repeats)."""
    panels = {
        dataset: [
            (
                _percent(cell.clean),
                _percent(cell.corrupted_mean),
                _percent(cell.corrupted_std or 0.0) if cell.corrupted_mean is not None else None,
            )
            for cell in (table.cell(row, dataset) for row in table.rows)
        ]
        for dataset in table.datasets
    }
    ylabel = f"{METRIC_TITLES.get(table.metric, table.metric)} x 100"
    return bar_chart(table.rows, panels, ylabel, path)


def write_report(table: Table, out: str | os.PathLike) -> list[Path]:
    """``OUT.md``, ``OUT.tex``, ``OUT.csv`` and the bar chart ``OUT.png``."""
    out = Path(out)
    written = []
    for fmt, suffix in SUFFIXES.items():
        with atomic_write(out.with_suffix(suffix), "w") as handle:
            handle.write(FORMATS[fmt](table))
        written.append(out.with_suffix(suffix))
    written.append(table_figure(table, out.with_suffix(".png")))
    return written


def comparison_figure(comparison: Comparison, path: str | os.PathLike) -> Path:
    """One panel per quantity (clean MAP@R, MAP@R over replaced backgrounds, attention
    score): bgbias against the published number of every model that has both."""
    panels = {
        TITLES[quantity]: [
            (dataset, mode, ours, theirs)
            for (dataset, _, mode), ours, theirs in as_points(comparison, quantity)
        ]
        for quantity in QUANTITIES
    }
    return agreement_chart(panels, path)


def compare_results(
    paths: list[str | os.PathLike], reference: str = "paper", out: str | os.PathLike | None = None
) -> tuple[Comparison, list[Path]]:
    """Compare the results under ``paths`` with the published ``reference``; write ``OUT.md``,
    ``OUT.tex``, ``OUT.csv`` and ``OUT.png`` (default ``<first folder>/compare-<reference>``)."""
    comparison = compare(paths, reference)
    if out is None:
        first = Path(paths[0])
        out = (first if first.is_dir() else first.parent) / f"compare-{reference}"
    out = Path(out)
    written = []
    renders = {".md": comparison_markdown, ".tex": comparison_latex, ".csv": comparison_csv}
    for suffix, render in renders.items():
        write_text(out.with_suffix(suffix), render(comparison))
        written.append(out.with_suffix(suffix))
    written.append(comparison_figure(comparison, out.with_suffix(".png")))
    return comparison, written
