"""Figures (PNG): result bar charts and attribution-map grids."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io import atomic_write
from .tables import METRIC_TITLES, Table


def bar_chart(table: Table, path: str | os.PathLike) -> Path:
    """Grouped bars per model, clean vs corrupted (error bar: std over repeats); one panel per
    dataset. Missing cells leave an empty slot."""
    import numpy as np

    plt = pyplot()

    n = len(table.datasets)
    fig, axes = plt.subplots(
        1, n, figsize=(max(5.0, 0.9 * len(table.rows) + 2) * n, 4.2), squeeze=False
    )
    x = np.arange(len(table.rows))
    for ax, dataset in zip(axes[0], table.datasets, strict=True):
        cells = [table.cell(r, dataset) for r in table.rows]
        clean = [100 * c.clean if c.clean is not None else np.nan for c in cells]
        mean = [100 * c.corrupted_mean if c.corrupted_mean is not None else np.nan for c in cells]
        std = [
            100 * (c.corrupted_std or 0.0) if c.corrupted_mean is not None else 0.0 for c in cells
        ]
        ax.bar(x - 0.2, clean, 0.4, label="clean", color="#4C72B0")
        ax.bar(
            x + 0.2, mean, 0.4, yerr=std, capsize=3, label="replaced backgrounds", color="#DD8452"
        )
        ax.set_xticks(x, table.rows, rotation=25, ha="right")
        ax.set_ylabel(f"{METRIC_TITLES.get(table.metric, table.metric)} x 100")
        ax.set_title(dataset)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    # outside the panels: inside, it covered the tallest bars
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path, dpi=120)


def attribution_figure(
    images: dict[str, Any], maps: dict[str, Any], scores: dict[str, list[float]], path
) -> Path:
    """Rows: an image, then each model's attribution map over it (with its attention score).

    Per model label: images (K, 3, H, W) RGB in [0, 1] as that model saw them, maps (K, H, W)
    in [0, 1], scores (K,). The first column shows the first model's view.
    """
    plt = pyplot()
    views = {label: view.permute(0, 2, 3, 1).clamp(0, 1).numpy() for label, view in images.items()}
    k, cols = len(next(iter(views.values()))), 1 + len(maps)
    fig, axes = plt.subplots(k, cols, figsize=(2.4 * cols, 2.4 * k), squeeze=False)
    for row in range(k):
        axes[row][0].imshow(next(iter(views.values()))[row])
        for col, (label, model_maps) in enumerate(maps.items(), start=1):
            axes[row][col].imshow(views[label][row] * 0.35)
            axes[row][col].imshow(
                model_maps[row].numpy(), cmap="inferno", alpha=0.75, vmin=0, vmax=1
            )
            axes[row][col].set_xlabel(f"score {scores[label][row]:.2f}", fontsize=8)
            if row == 0:
                axes[row][col].set_title(label, fontsize=9)
        if row == 0:
            axes[row][0].set_title("image", fontsize=9)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    return save_figure(fig, path, dpi=110)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int) -> Path:
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)
    pyplot().close(fig)
    return path


def comparison_figure(comparison, path: str | os.PathLike) -> Path:
    """bgbias against the published numbers, one panel per quantity (clean MAP@R, MAP@R over
    replaced backgrounds, attention score): one point per model and dataset, the diagonal is
    perfect agreement."""
    from .compare import QUANTITIES, TITLES, as_points

    plt = pyplot()
    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(4.2 * len(QUANTITIES), 4.2))
    markers = {"base": "o", "bgaugment": "^", "base_corrupted": "s"}
    colors = {}
    for ax, quantity in zip(axes, QUANTITIES, strict=True):
        points = as_points(comparison, quantity)
        for (dataset, _, mode), ours, theirs in points:
            color = colors.setdefault(dataset, f"C{len(colors)}")
            ax.scatter(theirs, ours, color=color, marker=markers.get(mode, "x"), s=36)
        values = [v for _, a, b in points for v in (a, b)] or [0.0, 1.0]
        low, high = min(values), max(values)
        pad = 0.05 * (high - low or 1.0)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6", lw=1, zorder=0)
        if not points:
            ax.text(0.5, 0.5, "no model has both numbers", ha="center", transform=ax.transAxes)
        ax.set_title(TITLES[quantity])
        ax.set_xlabel("paper")
        ax.set_ylabel("bgbias")
        ax.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], color=c, marker="o", ls="", label=d) for d, c in colors.items()
    ] + [plt.Line2D([], [], color="0.3", marker=m, ls="", label=k) for k, m in markers.items()]
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path, dpi=110)
