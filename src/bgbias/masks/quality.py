"""Mask quality against hand-labelled masks (the paper's mask check): both binarised at 128;
per image IoU = |P and G| / |P or G| and overlap = |P and G| / |G|; summary statistics."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.mask_sanity import THRESHOLD, binary
from ..decoding import load_mask
from ..errors import DataError
from ..tabular import markdown_table


def binarise(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    return binary(load_mask(path, size))


def pair_masks(
    pred_dir: Path, gt_dir: Path, pred_suffix: str = "", gt_suffix: str = ""
) -> list[tuple[str, Path, Path]]:
    """(key, predicted, hand-labelled) by relative path, ``*_suffix.png`` stripped to the key."""

    def index(root: Path, suffix: str) -> dict[str, Path]:
        if not root.is_dir():
            raise DataError(f"{root}: mask folder not found")
        found = {}
        for path in root.rglob(f"*{suffix}.png"):
            relative = path.relative_to(root)
            key = str(relative.with_name(relative.stem[: len(relative.stem) - len(suffix)]))
            found[key] = path
        return found

    pred, gt = index(Path(pred_dir), pred_suffix), index(Path(gt_dir), gt_suffix)
    keys = sorted(set(pred) & set(gt))
    if not keys:
        raise DataError(
            f"no mask in {pred_dir} (*{pred_suffix}.png) has a counterpart in {gt_dir} "
            f"(*{gt_suffix}.png)"
        )
    return [(k, pred[k], gt[k]) for k in keys]


def summarise(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    q1, median, q3 = np.percentile(array, [25, 50, 75])
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "max": float(array.max()),
    }


def mask_quality(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    pred_suffix: str = "",
    gt_suffix: str = "",
) -> dict:
    """Per-image IoU and overlap, and their statistics; masks of different size raise."""
    rows = []
    for key, pred_path, gt_path in pair_masks(Path(pred_dir), Path(gt_dir), pred_suffix, gt_suffix):
        gt = binarise(gt_path)
        pred = binarise(pred_path, (gt.shape[1], gt.shape[0]))
        union = np.logical_or(pred, gt).sum()
        inter = np.logical_and(pred, gt).sum()
        rows.append(
            {
                "image": key,
                "iou": float(inter / union) if union else 1.0,
                "overlap": float(inter / gt.sum()) if gt.sum() else float("nan"),
            }
        )
    overlaps = [r["overlap"] for r in rows if not np.isnan(r["overlap"])]
    return {
        "images": len(rows),
        "iou": summarise([r["iou"] for r in rows]),
        "overlap": summarise(overlaps) if overlaps else None,
        "per_image": rows,
    }


def format_quality(result: dict) -> str:
    columns = ("mean", "std", "min", "q1", "median", "q3", "max")
    rows = [
        [name, *(f"{result[name][k]:.3f}" for k in columns)]
        for name in ("iou", "overlap")
        if result[name] is not None
    ]
    lines = [
        f"{result['images']} image pairs, binarised at {THRESHOLD}",
        *markdown_table(["measure", *columns], rows),
    ]
    return "\n".join(lines) + "\n"
