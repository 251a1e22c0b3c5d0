"""One model's audit result from its embeddings of every variant: the ``audit.json`` entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..metrics import Distance
from .conditions import CONDITIONS, REPEATED, Variant
from .metrics import (
    area_quartiles,
    asymmetric_metrics,
    bootstrap_interval,
    breakdown,
    instance_metrics,
    instance_ranks,
    mean_and_std,
    product_hits,
    symmetric_metrics,
)

# per condition, what a background-reliant model does: loses its own original when the object
# stays (lowest cosine first), or keeps it when only the background stays (highest first)
WORST_FIRST = {"only_fg": "low", "mixed_rand": "low", "mixed_same": "low", "only_bg": "high"}


@dataclass
class Embedded:
    """A model's embeddings of every variant: ``vectors[key]`` (K, D) for images ``rows[key]``."""

    vectors: dict[str, torch.Tensor] = field(default_factory=dict)
    rows: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def originals(self) -> torch.Tensor:
        return self.vectors["original"]


@dataclass
class PerImage:
    """Per image of one condition, over its repeats: hit@1 fraction, mean cosine, mean rank,
    product hit@1 fraction (with labels, else None); NaN where the condition does not cover
    the image."""

    hit: np.ndarray
    cosine: np.ndarray
    rank: np.ndarray
    product: np.ndarray | None = None


def _condition_scores(
    embedded: Embedded,
    keys: list[str],
    labels: np.ndarray | None,
    distance: Distance,
    n: int,
) -> tuple[dict[str, Any], PerImage]:
    per_repeat, hit, cosine, rank, seen = [], np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    product = np.zeros(n)
    for key in keys:
        vectors, rows = embedded.vectors[key], embedded.rows[key]
        result: dict[str, Any] = {}
        if not key.startswith("original"):
            ranks, cosines = instance_ranks(vectors, embedded.originals, rows, distance)
            same = None
            if labels is not None:
                same = product_hits(vectors, embedded.originals, rows, labels, distance)
            result["instance"] = instance_metrics(ranks, cosines, same)
            idx = rows.numpy()
            if same is not None:
                product[idx] += same.double().numpy()
            hit[idx] += (ranks == 1).double().numpy()
            cosine[idx] += cosines.double().numpy()
            rank[idx] += ranks.double().numpy()
            seen[idx] += 1
        if labels is not None:
            result["symmetric"] = symmetric_metrics(vectors, labels, rows, distance)
            result["asymmetric"] = asymmetric_metrics(
                vectors, embedded.originals, labels, rows, distance
            )
        per_repeat.append(result)
    with np.errstate(invalid="ignore", divide="ignore"):
        images = PerImage(
            hit / seen, cosine / seen, rank / seen, None if labels is None else product / seen
        )
    return per_repeat, images


def intervals(
    values: PerImage, labels: np.ndarray | None, seed: int
) -> dict[str, float | list[float] | None]:
    """The 95% bootstrap intervals (over images) of a condition's hit@1 and product hit@1, and
    product hit@1's chance level: the mean share of the originals that share the query's label."""
    out: dict[str, float | list[float] | None] = {
        "hit_at_1_ci": bootstrap_interval(values.hit, seed=seed)
    }
    if labels is not None and values.product is not None:
        covered = ~np.isnan(values.hit)
        share = np.bincount(labels)[labels] / len(labels)
        out["product_hit_at_1_ci"] = bootstrap_interval(values.product, seed=seed)
        out["product_chance"] = float(share[covered].mean()) if covered.any() else None
    return out


def score_model(
    embedded: Embedded,
    labels: np.ndarray | None,
    class_names: list[str] | None,
    ids: list[str],
    mask_area: np.ndarray,
    alphas: list[float],
    distance: Distance = "cosine",
    worst: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """The model's ``conditions`` (hit@1 with its 95% bootstrap interval, seeded by ``seed``),
    ``blend``, ``bg_gap``, breakdowns and worst images."""
    n = len(embedded.originals)
    conditions, per_image = {}, {}
    for condition in CONDITIONS:
        keys = [k for k in embedded.vectors if k.split("#")[0] == condition]
        if not keys:
            continue
        per_repeat, per_image[condition] = _condition_scores(embedded, keys, labels, distance, n)
        mean, std = mean_and_std(per_repeat)
        entry = dict(mean)
        if "instance" in entry:  # the same resamples for every model: intervals compare fairly
            entry["instance"] |= intervals(per_image[condition], labels, seed)
        if condition in REPEATED:
            entry["std"] = std
            entry["repeats"] = len(keys)
        entry["images"] = len(embedded.rows[keys[0]])
        conditions[condition] = entry
    blend = []
    for alpha in alphas:
        source, key = embedded, Variant("blend", 0, alpha).key
        if alpha == 0.0:  # the original itself: the curve's start (its own original at rank 1)
            originals, rows = embedded.originals, embedded.rows["original"]
            source = Embedded(
                {"original": originals, key: originals}, {"original": rows, key: rows}
            )
        elif alpha == 1.0:  # the background fully replaced: mixed_rand's first draw
            key = "mixed_rand#0"
        scores, _ = _condition_scores(source, [key], labels, distance, n)
        blend.append({"alpha": alpha, **scores[0]})
    bg_gap = None
    if "mixed_same" in conditions and "symmetric" in conditions["mixed_same"]:
        bg_gap = (
            conditions["mixed_same"]["symmetric"]["map_at_r"]
            - conditions["mixed_rand"]["symmetric"]["map_at_r"]
        )
    result = {"conditions": conditions, "blend": blend, "bg_gap": bg_gap}
    result["breakdown"] = _breakdowns(per_image, labels, class_names, mask_area)
    result["worst"] = {
        condition: worst_images(per_image[condition], ids, labels, class_names, worst, order)
        for condition, order in WORST_FIRST.items()
        if condition in per_image
    }
    return result


def _breakdowns(per_image, labels, class_names, mask_area) -> dict[str, Any]:
    groups, names = area_quartiles(mask_area)
    out = {
        "by_mask_area": {
            c: breakdown(v.hit, v.cosine, groups, names)
            for c, v in per_image.items()
            if c != "original"
        }
    }
    if labels is not None:
        out["by_class"] = {
            c: breakdown(v.hit, v.cosine, labels, class_names)
            for c, v in per_image.items()
            if c != "original"
        }
    return out


def worst_images(
    values: PerImage,
    ids: list[str],
    labels: np.ndarray | None,
    class_names: list[str] | None,
    k: int,
    order: str,
) -> list[dict[str, Any]]:
    """The ``k`` images the condition shows most background reliance on: lowest cosine to the
    original (``order="low"``) or highest (``"high"``, for only_bg)."""
    covered = np.flatnonzero(~np.isnan(values.cosine))
    key = values.cosine[covered] if order == "low" else -values.cosine[covered]
    chosen = covered[np.argsort(key, kind="stable")[:k]]
    return [
        {
            "index": int(i),
            "image": ids[i],
            "class": class_names[labels[i]] if labels is not None else None,
            "cosine": float(values.cosine[i]),
            "hit_at_1": float(values.hit[i]),
            "rank": float(values.rank[i]),
        }
        for i in chosen
    ]
