"""The audit's figures (PNG): bars per condition, the blend curve, retrieval grids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..report.figures import pyplot, save_figure

MARK_COLOURS = {"own": "#2ca02c", "class": "#98df8a", "wrong": "#d62728"}
MARK_TEXT = {"own": "its original", "class": "same class", "wrong": "wrong"}


@dataclass(frozen=True)
class Grid:
    """A model's retrieval grid, ready to draw: ``rows`` (title, {"query": (3, C, C) RGB in
    [0, 1], "results": [original index], "marks": [mark]}) and ``gallery``: the (3, C, C) uint8
    originals those results show, by index (only those, so that a kept result stays small)."""

    rows: list[tuple[str, dict[str, Any]]]
    gallery: Mapping[int, torch.Tensor]


CONDITION_COLOURS = {
    "original": "#4C72B0",
    "only_fg": "#55A868",
    "mixed_rand": "#DD8452",
    "mixed_same": "#8172B2",
    "only_bg": "#C44E52",
}


def _panels(audit: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    """(title, family, metric, conditions) of each bar panel."""
    varied = [c for c in audit["conditions"] if c != "original"]
    panels = [
        ("own original at rank 1 (hit@1)", "instance", "hit_at_1", varied),
        ("cosine(original, variant)", "instance", "cosine_mean", varied),
    ]
    if audit["label_metrics"]:
        panels.append(("MAP@R (symmetric)", "symmetric", "map_at_r", audit["conditions"]))
    return panels


def condition_bars(audit: dict[str, Any], path: Path) -> Path:
    """One panel per metric; per condition a group of bars, one per model (error bar: std over
    repeats)."""
    plt = pyplot()
    panels, models = _panels(audit), list(audit["models"])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.5, 3.8), squeeze=False)
    width = 0.8 / len(models)
    colours = plt.get_cmap("tab10")
    for ax, (title, family, metric, conditions) in zip(axes[0], panels, strict=True):
        x = np.arange(len(conditions))
        for m, spec in enumerate(models):
            entries = [audit["models"][spec]["conditions"].get(c, {}) for c in conditions]
            values = [e.get(family, {}).get(metric, np.nan) for e in entries]
            errors = [e.get("std", {}).get(family, {}).get(metric, 0.0) for e in entries]
            ax.bar(
                x + (m - (len(models) - 1) / 2) * width,
                values,
                width,
                yerr=errors,
                capsize=2,
                color=colours(m),
                label=audit["models"][spec]["label"],
            )
        if metric == "hit_at_1" and "chance_hit_at_1" in audit:
            ax.axhline(audit["chance_hit_at_1"], color="black", linestyle="--", linewidth=0.8)
        ax.set_xticks(x, conditions, rotation=20)
        ax.set_ylim(min(0.0, float(np.nanmin(ax.dataLim.y0))), 1.0)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return save_figure(fig, path, dpi=110)


def blend_curve(audit: dict[str, Any], path: Path) -> Path:
    """hit@1 and cosine (and MAP@R with labels) as the background fades to a random photo."""
    plt = pyplot()
    panels = [
        ("hit@1", "instance", "hit_at_1"),
        ("cosine(original, variant)", "instance", "cosine_mean"),
    ]
    if audit["label_metrics"]:
        panels.append(("MAP@R (symmetric)", "symmetric", "map_at_r"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 3.4), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (title, family, metric) in zip(axes[0], panels, strict=True):
        for m, (_, model) in enumerate(audit["models"].items()):
            alphas = [b["alpha"] for b in model["blend"]]
            values = [b.get(family, {}).get(metric, np.nan) for b in model["blend"]]
            ax.plot(alphas, values, marker="o", color=colours(m), label=model["label"])
        ax.set_xlabel("alpha (0: original background, 1: random photo)")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0.0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return save_figure(fig, path, dpi=110)


def retrieval_grid(
    rows: list[tuple[str, dict[str, Any]]],
    gallery: torch.Tensor | Mapping[int, torch.Tensor],
    path: Path,
    title: str = "",
) -> Path:
    """One row per query: the query image, then its top-k gallery images, each framed by its
    mark (green: the query's own original, light green: same class, red: wrong).

    rows: (row title, {"query": (3, H, W) RGB in [0, 1], "results": [gallery index],
    "marks": [mark]}); gallery: (N, 3, H, W) uint8 originals, or (3, H, W) ones by index.
    """
    plt = pyplot()
    k = max(len(entry["results"]) for _, entry in rows)
    fig, axes = plt.subplots(
        len(rows), k + 1, figsize=(1.75 * (k + 1), 1.95 * len(rows) + 0.5), squeeze=False
    )
    for r, (row_title, entry) in enumerate(rows):
        cells = [(entry["query"].permute(1, 2, 0).numpy(), "query", None)]
        cells += [
            (gallery[j].permute(1, 2, 0).numpy(), f"{n + 1}. {MARK_TEXT[mark]}", mark)
            for n, (j, mark) in enumerate(zip(entry["results"], entry["marks"], strict=True))
        ]
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            image, label, mark = cells[c]
            ax.imshow(image)
            ax.set_xlabel(label, fontsize=7, color=MARK_COLOURS.get(mark, "black"))
            for spine in ax.spines.values():
                spine.set_edgecolor(MARK_COLOURS.get(mark, "black"))
                spine.set_linewidth(4 if mark else 1)
        axes[r][0].set_title(row_title, fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=100)


def grid_rows_for(model_grids: dict[str, list[dict]]) -> list:
    """Row titles and entries of a model's grid: its worst queries per condition."""
    return [
        (f"{condition}: {entry['image']} (cos {entry['cosine']:.2f})", entry)
        for condition, entries in model_grids.items()
        for entry in entries
    ]


def comparison_grid(
    queries: torch.Tensor,
    titles: list[str],
    results: dict[str, list[list[int]]],
    marks: dict[str, list[list[str]]],
    precision: dict[str, float],
    gallery: torch.Tensor,
    path: Path,
) -> Path:
    """One row per query: the query, then each model's top-k side by side (a gap between
    models), framed green (same class) or red (wrong).

    queries: (K, 3, H, W) RGB in [0, 1]; results/marks: per model label, K lists of gallery
    indices / marks; precision: per model, the share of shown results of the right class;
    gallery: (N, 3, H, W) uint8.
    """
    plt = pyplot()
    labels = list(results)
    k = max(len(r) for rows in results.values() for r in rows)
    columns = 1 + len(labels) * (k + 1)
    ratios = [1.0] + ([0.25] + [1.0] * k) * len(labels)  # a narrow gap before each model
    fig, axes = plt.subplots(
        len(queries),
        columns,
        figsize=(1.3 * sum(ratios), 1.5 * len(queries) + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": ratios},
    )
    for row, query in enumerate(queries):
        cells = {0: (query.permute(1, 2, 0).numpy(), None)}
        for m, label in enumerate(labels):
            start = 1 + m * (k + 1) + 1
            for n, (j, mark) in enumerate(zip(results[label][row], marks[label][row], strict=True)):
                cells[start + n] = (gallery[j].permute(1, 2, 0).numpy(), mark)
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col not in cells:
                ax.axis("off")
                continue
            image, mark = cells[col]
            ax.imshow(image)
            for spine in ax.spines.values():
                spine.set_edgecolor(MARK_COLOURS.get(mark, "black"))
                spine.set_linewidth(4 if mark else 1)
        axes[row][0].set_xlabel(titles[row], fontsize=6)
    axes[0][0].set_title("query\n(new background)", fontsize=8)
    for m, label in enumerate(labels):
        first = 1 + m * (k + 1) + 1
        axes[0][first + (k - 1) // 2].set_title(
            f"{label}\ntop-{k}: {precision[label]:.0%} right class", fontsize=8
        )
    return save_figure(fig, path, dpi=100)
