"""bgbias's results beside published ones (the paper's two tables, Kobs & Hotho 2022), with the
difference: Markdown, LaTeX and CSV (:mod:`bgbias.report.write` writes them, with a figure).

Results are found under the given folders: evaluation files (``*.eval.json``, MAP@R clean and
over replaced backgrounds) and attention summaries (``summary.json`` of ``bgbias attention``),
matched to the published numbers by (dataset, loss, mode). Rows either side lacks are kept,
shown as missing.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import BgbiasError
from ..registry import Registry
from ..runs import row_label
from ..tabular import MISSING, PLUS_MINUS, latex_table, markdown_table, mean_std, tex_escape
from .results import load_result

log = logging.getLogger(__name__)
Key = tuple[str, str, str]  # dataset, loss, mode
QUANTITIES = ("clean", "corrupted", "attention")  # MAP@R x 100, MAP@R x 100, score
TITLES = {
    "clean": "MAP@R x 100, clean",
    "corrupted": "MAP@R x 100, replaced backgrounds",
    "attention": "attention score",
}
DATASET_ORDER = ("cars196", "cub200", "sop")
MODE_ORDER = ("base", "bgaugment", "base_corrupted")

PUBLISHED: Registry[str] = Registry("published results")
PUBLISHED.register("paper", "paper_results.json")


@dataclass
class Numbers:
    """One model's numbers: ``value[q]`` and ``std[q]`` per quantity (None where missing)."""

    value: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(QUANTITIES))
    std: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(QUANTITIES))


@dataclass
class Comparison:
    reference: str  # the citation of the published numbers
    rows: dict[Key, tuple[Numbers, Numbers]]  # (bgbias's, published)

    def difference(self, key: Key, quantity: str) -> float | None:
        ours, theirs = (n.value[quantity] for n in self.rows[key])
        return None if ours is None or theirs is None else ours - theirs


def published(name: str) -> tuple[str, dict[Key, Numbers]]:
    """The citation and numbers of a registered set of published results."""
    data = json.loads(resources.files("bgbias").joinpath("assets", PUBLISHED.get(name)).read_text())
    numbers: dict[Key, Numbers] = {}
    for row in data["map_at_r"]["rows"]:
        n = numbers.setdefault((row["dataset"], row["loss"], row["mode"]), Numbers())
        n.value["clean"], n.value["corrupted"] = row["clean"], row["corrupted"]
        n.std["corrupted"] = row["corrupted_std"]
    for row in data["attention"]["rows"]:
        numbers.setdefault((row["dataset"], row["loss"], row["mode"]), Numbers()).value[
            "attention"
        ] = row["score"]
    return data["paper"], numbers


def collect(paths: list[str | os.PathLike]) -> dict[Key, Numbers]:
    """bgbias's numbers under ``paths``: test-split evaluation files and attention summaries
    of bgbias runs (others are skipped)."""
    found: dict[Key, Numbers] = {}
    seen: dict[tuple[Key, str], Path] = {}

    def put(key: Key, quantity: str, value: float, std: float | None, path: Path) -> None:
        if (key, quantity) in seen:
            log.warning(
                "%s: %s of %s already read from %s; kept that",
                path,
                quantity,
                key,
                seen[(key, quantity)],
            )
            return
        seen[(key, quantity)] = path
        numbers = found.setdefault(key, Numbers())
        numbers.value[quantity], numbers.std[quantity] = value, std

    for path in _files(paths, "*.eval.json"):
        result = load_result(path)
        model, data = result["model"], result.get("dataset", {})
        if data.get("split", "test") != "test" or not {"loss", "mode"} <= set(model):
            continue
        key = (str(data.get("name")), model["loss"], model["mode"])
        put(key, "clean", 100 * result["clean"]["map_at_r"], None, path)
        corrupted = (result.get("corrupted") or {}).get("map_at_r")
        if corrupted:
            put(key, "corrupted", 100 * corrupted["mean"], 100 * corrupted["std"], path)
    for path in _files(paths, "summary.json"):
        try:
            summary = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BgbiasError(f"{path}: not a readable attention summary ({exc})") from None
        entries = summary.values() if isinstance(summary, dict) else []
        for entry in entries:
            usable = isinstance(entry, dict) and {"loss", "mode", "dataset", "mean"} <= set(entry)
            if usable and entry.get("split", "test") == "test":
                key = (entry["dataset"], entry["loss"], entry["mode"])
                put(key, "attention", entry["mean"], entry.get("std"), path)
    if not found:
        raise BgbiasError(
            f"no results of bgbias runs (*.eval.json, attention summary.json) in "
            f"{', '.join(map(str, paths))}; make them with `bgbias reproduce`"
        )
    return found


def compare(paths: list[str | os.PathLike], reference: str = "paper") -> Comparison:
    citation, theirs = published(reference)
    ours = collect(paths)
    keys = sorted(set(theirs) | set(ours), key=_order)
    return Comparison(
        citation, {k: (ours.get(k, Numbers()), theirs.get(k, Numbers())) for k in keys}
    )


def _order(key: Key) -> tuple:
    dataset, loss, mode = key
    rank = DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER)
    mode_rank = MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER)
    return (rank, dataset, loss, mode_rank, mode)


def _files(paths: list[str | os.PathLike], pattern: str) -> list[Path]:
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(path.rglob(pattern)))
        elif path.is_file() and path.match(pattern):
            found.append(path)
        elif not path.exists():
            raise BgbiasError(f"{path}: no such file or folder")
    return found


def _label(key: Key) -> str:
    return row_label({"loss": key[1], "mode": key[2]})


def _signed(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:+.{digits}f}"


def _cells(comparison: Comparison, key: Key, quantity: str, fmt: str) -> list[str]:
    ours, theirs = comparison.rows[key]
    digits = 2 if quantity != "attention" else 3
    pm = PLUS_MINUS[fmt]
    return [
        mean_std(ours.value[quantity], ours.std[quantity], digits, pm),
        mean_std(theirs.value[quantity], theirs.std[quantity], digits, pm),
        _signed(comparison.difference(key, quantity), digits),
    ]


TABLES = {"map_at_r": ("clean", "corrupted"), "attention": ("attention",)}


def to_markdown(comparison: Comparison) -> str:
    lines = [f"bgbias beside {comparison.reference}; difference = bgbias - paper.", ""]
    for title, quantities in (
        ("MAP@R x 100", TABLES["map_at_r"]),
        ("Attention score", TABLES["attention"]),
    ):
        header = ["model", "dataset"] + [
            f"{q} {who}" for q in quantities for who in ("bgbias", "paper", "difference")
        ]
        rows = (
            [_label(key), key[0]]
            + [c for q in quantities for c in _cells(comparison, key, q, "md")]
            for key in comparison.rows
        )
        lines += [f"### {title}", "", *markdown_table(header, rows), ""]
    return "\n".join(lines)


def to_latex(comparison: Comparison) -> str:
    lines = [f"% bgbias beside {comparison.reference}; difference = bgbias - paper"]
    for quantities in TABLES.values():
        header = [
            ["Model", "Dataset"] + [rf"\multicolumn{{3}}{{c}}{{{TITLES[q]}}}" for q in quantities],
            ["", ""] + ["bgbias", "paper", r"$\Delta$"] * len(quantities),
        ]
        rows = (
            [tex_escape(_label(key)), tex_escape(key[0])]
            + [c for q in quantities for c in _cells(comparison, key, q, "latex")]
            for key in comparison.rows
        )
        lines += [*latex_table("ll" + "rrr" * len(quantities), header, rows), ""]
    return "\n".join(lines)


def to_csv(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "model",
            "dataset",
            "loss",
            "mode",
            "quantity",
            "bgbias",
            "bgbias_std",
            "paper",
            "paper_std",
            "difference",
        ]
    )
    for key, (ours, theirs) in comparison.rows.items():
        for q in QUANTITIES:
            values = [
                ours.value[q],
                ours.std[q],
                theirs.value[q],
                theirs.std[q],
                comparison.difference(key, q),
            ]
            writer.writerow(
                [_label(key), *key, q] + ["" if v is None else f"{v:.6g}" for v in values]
            )
    return buffer.getvalue()


def as_points(comparison: Comparison, quantity: str) -> list[tuple[Key, float, float]]:
    """(key, bgbias, paper) for every row where both have ``quantity``."""
    points = []
    for key, (ours, theirs) in comparison.rows.items():
        if ours.value[quantity] is not None and theirs.value[quantity] is not None:
            points.append((key, ours.value[quantity], theirs.value[quantity]))
    return points


__all__ = ["PUBLISHED", "Comparison", "compare", "published"]
