"""Result tables (Markdown, LaTeX, CSV) from evaluation JSON files.

The table has the paper's layout: one row per model (loss, with and without BGAugment), and per
dataset a clean and a corrupted column (MAP@R x 100; corrupted as mean +- std over repeats).
Cells with no result are shown as missing, never dropped.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from ..runs import row_label
from ..tabular import PLUS_MINUS, latex_table, markdown_table, mean_std, tex_escape
from .format import METRIC_TITLES


@dataclass
class Cell:
    clean: float | None = None
    corrupted_mean: float | None = None
    corrupted_std: float | None = None
    source: str | None = None


@dataclass
class Table:
    metric: str
    rows: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def cell(self, row: str, dataset: str) -> Cell:
        return self.cells.get((row, dataset), Cell())


def build_table(results: list[dict[str, Any]], metric: str = "map_at_r") -> Table:
    table = Table(metric)
    for result in results:
        row = row_label(result["model"])
        dataset = str(result.get("dataset", {}).get("name", "dataset"))
        corrupted = (result.get("corrupted") or {}).get(metric) or {}
        table.cells[(row, dataset)] = Cell(
            result["clean"].get(metric),
            corrupted.get("mean"),
            corrupted.get("std"),
            result.get("path"),
        )
        if row not in table.rows:
            table.rows.append(row)
        if dataset not in table.datasets:
            table.datasets.append(dataset)
    table.rows.sort(key=lambda r: (r.split(" + ")[0].split(" (")[0], r))
    return table


def _cells(table: Table, row: str, fmt: str) -> list[str]:
    """One row's clean and corrupted MAP@R x 100 per dataset (corrupted: mean ± std)."""
    cells = []
    for dataset in table.datasets:
        c = table.cell(row, dataset)
        cells += [
            mean_std(c.clean, scale=100),
            mean_std(c.corrupted_mean, c.corrupted_std or 0.0, pm=PLUS_MINUS[fmt], scale=100),
        ]
    return cells


def to_markdown(table: Table) -> str:
    title = METRIC_TITLES.get(table.metric, table.metric)
    header = ["model"] + [f"{d} {kind}" for d in table.datasets for kind in ("clean", "corrupted")]
    lines = [
        f"{title} x 100 (corrupted: replaced test backgrounds, mean ± std over repeats)",
        "",
        *markdown_table(header, ([row, *_cells(table, row, "md")] for row in table.rows)),
    ]
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    title = METRIC_TITLES.get(table.metric, table.metric)
    header = [
        ["Model"] + [rf"\multicolumn{{2}}{{c}}{{{tex_escape(d)}}}" for d in table.datasets],
        [""] + ["clean", "corrupted"] * len(table.datasets),
    ]
    rows = ([tex_escape(row), *_cells(table, row, "latex")] for row in table.rows)
    lines = [
        *latex_table("l" + "rr" * len(table.datasets), header, rows),
        f"% {title} x 100; corrupted: replaced test backgrounds, mean $\\pm$ std over repeats",
    ]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "dataset", "metric", "clean", "corrupted_mean", "corrupted_std"])
    for row in table.rows:
        for dataset in table.datasets:
            c = table.cell(row, dataset)
            writer.writerow(
                [row, dataset, table.metric]
                + [
                    "" if v is None else f"{v:.6f}"
                    for v in (c.clean, c.corrupted_mean, c.corrupted_std)
                ]
            )
    return buffer.getvalue()


FORMATS = {"md": to_markdown, "latex": to_latex, "csv": to_csv}
SUFFIXES = {"md": ".md", "latex": ".tex", "csv": ".csv"}


def attention_table(summaries: dict[str, dict[str, float]], fmt: str = "md") -> str:
    """Attention score per model, mean ± std over test images (Markdown or LaTeX)."""
    if fmt == "latex":
        rows = (
            [tex_escape(label), mean_std(s["mean"], s["std"], pm=PLUS_MINUS[fmt]), str(s["images"])]
            for label, s in summaries.items()
        )
        lines = latex_table("lrr", [["Model", "attention score", "images"]], rows)
    else:
        rows = (
            [label, mean_std(s["mean"], s["std"], 3), str(s["images"]), str(s["undefined"])]
            for label, s in summaries.items()
        )
        lines = markdown_table(["model", "attention score", "images", "undefined"], rows)
    return "\n".join(lines) + "\n"
