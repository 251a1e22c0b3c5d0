"""Figures (PNG) from plain numbers: result bar charts, agreement with published numbers, and
attribution-map grids. They know nothing of tables or comparisons (:mod:`bgbias.report.write`
turns those into numbers), so every report module can use them."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

from ..io import atomic_write

# (clean, replaced-background mean, its std) of one model: a pair of bars, None where missing
Bars = tuple[float | None, float | None, float | None]
# (dataset, mode, bgbias's value, the published value) of one model: a point
Agreement = tuple[str, str, float, float]
MODE_MARKERS = {"base": "o", "bgaugment": "^", "base_corrupted": "s"}


def bar_chart(
    labels: list[str], panels: dict[str, list[Bars]], ylabel: str, path: str | os.PathLike
) -> Path:
    """Grouped bars per model (``labels``), clean vs replaced backgrounds (error bar: std over
    repeats); one panel per key of ``panels``, whose bars follow ``labels``. A missing value
    leaves an empty slot."""
    plt = pyplot()

    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(4.0, 1.4 * len(labels) + 1) * len(panels), 4.2), squeeze=False
    )
    x = range(len(labels))
    for ax, (title, bars) in zip(axes[0], panels.items(), strict=True):
        clean = [math.nan if c is None else c for c, _, _ in bars]
        mean = [math.nan if m is None else m for _, m, _ in bars]
        std = [0.0 if m is None else (s or 0.0) for _, m, s in bars]
        ax.bar([i - 0.2 for i in x], clean, 0.4, label="clean", color="#4C72B0")
        ax.bar(
            [i + 0.2 for i in x],
            mean,
            0.4,
            yerr=std,
            capsize=3,
            label="replaced backgrounds",
            color="#DD8452",
        )
        # wrapped, not rotated: long run names stay inside the figure and readable
        ax.set_xticks(list(x), [textwrap.fill(label, 16) for label in labels], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    # above the panels: inside, it covered the tallest bars
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return save_figure(fig, path, dpi=120, layout=False)


def attribution_figure(
    images: dict[str, Any], maps: dict[str, Any], scores: dict[str, list[float]], path
) -> Path:
    """Rows: an image, then each model's attribution map over it (with its attention score),
    a colour bar for the maps and a line saying what the score means.

    Per model label: images (K, 3, H, W) RGB in [0, 1] as that model saw them, maps (K, H, W)
    in [0, 1], scores (K,). The first column shows the first model's view.
    """
    plt = pyplot()
    views = {label: view.permute(0, 2, 3, 1).clamp(0, 1).numpy() for label, view in images.items()}
    k, cols = len(next(iter(views.values()))), 1 + len(maps)
    fig, axes = plt.subplots(k, cols, figsize=(2.4 * cols + 0.8, 2.4 * k + 0.9), squeeze=False)
    shown = None
    for row in range(k):
        axes[row][0].imshow(next(iter(views.values()))[row])
        for col, (label, model_maps) in enumerate(maps.items(), start=1):
            axes[row][col].imshow(views[label][row] * 0.35)
            shown = axes[row][col].imshow(
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
    fig.tight_layout(rect=(0, 0.9 / (2.4 * k + 0.9), 0.9, 1))
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
        bar.set_label("attribution (SmoothGrad, normalised)", fontsize=8)
    fig.text(
        0.02,
        0.01,
        textwrap.fill(
            "score: the attention score, the share of a model's attribution on the object "
            "beyond the object's share of the image (1: all on the object, 0: spread as if at "
            "random, below 0: on the background)",
            110,
        ),
        fontsize=7,
    )
    return save_figure(fig, path, dpi=110, layout=False)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int, layout: bool = True) -> Path:
    """Write ``fig`` as a PNG atomically; ``layout=False`` keeps a layout the caller made."""
    if layout:
        fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)
    pyplot().close(fig)
    return path


def agreement_chart(panels: dict[str, list[Agreement]], path: str | os.PathLike) -> Path:
    """bgbias against published numbers, one panel per title: one point per model and dataset
    (colour: dataset, marker: mode); the diagonal is perfect agreement."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    colors: dict[str, str] = {}
    for ax, (title, points) in zip(axes[0], panels.items(), strict=True):
        for dataset, mode, ours, theirs in points:
            color = colors.setdefault(dataset, f"C{len(colors)}")
            ax.scatter(theirs, ours, color=color, marker=MODE_MARKERS.get(mode, "x"), s=36)
        values = [v for *_, ours, theirs in points for v in (ours, theirs)] or [0.0, 1.0]
        low, high = min(values), max(values)
        pad = 0.05 * (high - low or 1.0)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6", lw=1, zorder=0)
        if not points:
            ax.text(0.5, 0.5, "no model has both numbers", ha="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel("paper")
        ax.set_ylabel("bgbias")
        ax.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], color=c, marker="o", ls="", label=d) for d, c in colors.items()
    ] + [plt.Line2D([], [], color="0.3", marker=m, ls="", label=k) for k, m in MODE_MARKERS.items()]
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path, dpi=110)
