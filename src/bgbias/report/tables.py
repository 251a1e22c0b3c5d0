"""Result tables (Markdown, LaTeX, CSV) from evaluation JSON files.

The table has the paper's layout: one row per model (loss, with and without BGAugment), and per
dataset a clean and a corrupted column (MAP@R x 100; corrupted as mean +- std over repeats).
Cells with no result are shown as missing, never dropped.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BgbiasError
from ..io import atomic_write
from ..runs import row_label

MISSING = "–"
METRIC_TITLES = {"map_at_r": "MAP@R", "precision_at_1": "P@1", "r_precision": "R-Precision"}


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


def find_results(paths: list[str | os.PathLike]) -> list[Path]:
    """Evaluation JSON files among ``paths`` (folders are searched for ``*.eval.json``)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(path.rglob("*.eval.json")))
        elif path.is_file():
            found.append(path)
        else:
            raise BgbiasError(f"{path}: no such file or folder")
    if not found:
        raise BgbiasError(
            f"no evaluation results (*.eval.json) in {', '.join(map(str, paths))}; "
            "make them with `bgbias evaluate`"
        )
    return found


def load_result(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BgbiasError(f"{path}: not a readable evaluation result ({exc})") from None
    if not isinstance(result, dict) or "clean" not in result or "model" not in result:
        raise BgbiasError(f"{path}: not a bgbias evaluation result (no 'clean'/'model' keys)")
    problem = _result_problem(result)
    if problem:
        raise BgbiasError(f"{path}: not a valid evaluation result ({problem})")
    return result


def _result_problem(result: dict[str, Any]) -> str | None:
    """What in a result's shape the tables cannot use (a hand-edited or foreign file)."""

    def number(value: Any) -> bool:  # null: a metric with no value (see bgbias.io.write_json)
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))

    for key in ("model", "clean"):
        if not isinstance(result[key], dict):
            return f"{key!r} must be an object, got {json.dumps(result[key])[:40]}"
    if not isinstance(result.get("dataset", {}), dict):
        return "'dataset' must be an object"
    corrupted = result.get("corrupted")
    if corrupted is not None and not isinstance(corrupted, dict):
        return f"'corrupted' must be an object or null, got {json.dumps(corrupted)[:40]}"
    for metric in METRIC_TITLES:
        if not number(result["clean"].get(metric)):
            return f"clean {metric} must be a number, got {json.dumps(result['clean'][metric])}"
        summary = (corrupted or {}).get(metric)
        if summary is None:
            continue
        if not isinstance(summary, dict):
            return f"corrupted {metric} must be an object with mean and std"
        for part in ("mean", "std"):
            if not number(summary.get(part)):
                return (
                    f"corrupted {metric} {part} must be a number, got {json.dumps(summary[part])}"
                )
    return None


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


def _pct(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.2f}"


def _pct_std(mean: float | None, std: float | None, pm: str) -> str:
    if mean is None:
        return MISSING
    return f"{100 * mean:.2f} {pm} {100 * (std or 0.0):.2f}"


def to_markdown(table: Table) -> str:
    title = METRIC_TITLES.get(table.metric, table.metric)
    header = ["model"] + [f"{d} {kind}" for d in table.datasets for kind in ("clean", "corrupted")]
    lines = [
        f"{title} x 100 (corrupted: replaced test backgrounds, mean ± std over repeats)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in table.rows:
        cells = [row]
        for dataset in table.datasets:
            c = table.cell(row, dataset)
            cells += [_pct(c.clean), _pct_std(c.corrupted_mean, c.corrupted_std, "±")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    title = METRIC_TITLES.get(table.metric, table.metric)
    columns = "l" + "rr" * len(table.datasets)
    lines = [
        r"\begin{tabular}{" + columns + "}",
        r"\toprule",
        " & ".join(["Model"] + [rf"\multicolumn{{2}}{{c}}{{{_tex(d)}}}" for d in table.datasets])
        + r" \\",
        " & ".join([""] + ["clean", "corrupted"] * len(table.datasets)) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        cells = [_tex(row)]
        for dataset in table.datasets:
            c = table.cell(row, dataset)
            cells += [
                _pct(c.clean).replace(MISSING, "--"),
                _pct_std(c.corrupted_mean, c.corrupted_std, r"$\pm$").replace(MISSING, "--"),
            ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
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


def write_report(table: Table, out: str | os.PathLike) -> list[Path]:
    """``OUT.md``, ``OUT.tex``, ``OUT.csv`` and the bar chart ``OUT.png``."""
    out = Path(out)
    written = []
    for fmt, suffix in SUFFIXES.items():
        with atomic_write(out.with_suffix(suffix), "w") as handle:
            handle.write(FORMATS[fmt](table))
        written.append(out.with_suffix(suffix))
    from .figures import bar_chart

    written.append(bar_chart(table, out.with_suffix(".png")))
    return written


def _tex(text: str) -> str:
    return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def attention_table(summaries: dict[str, dict[str, float]], fmt: str = "md") -> str:
    """Attention score per model, mean ± std over test images (Markdown or LaTeX)."""
    if fmt == "latex":
        lines = [
            r"\begin{tabular}{lrr}",
            r"\toprule",
            r"Model & attention score & images \\",
            r"\midrule",
        ]
        lines += [
            f"{_tex(label)} & {s['mean']:.2f} $\\pm$ {s['std']:.2f} & {s['images']} \\\\"
            for label, s in summaries.items()
        ]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"
    lines = ["| model | attention score | images | undefined |", "|---|---|---|---|"]
    lines += [
        f"| {label} | {s['mean']:.3f} ± {s['std']:.3f} | {s['images']} | {s['undefined']} |"
        for label, s in summaries.items()
    ]
    return "\n".join(lines) + "\n"
