"""The audit's numbers: instance-level (no labels needed) and label-level retrieval metrics.

Instance: query = an image's variant, gallery = every original; the rank of its own original
(1 = first; a tie with another original counts against it) and the cosine similarity between
the image's original and variant embeddings. Label-level: MAP@R, P@1 and R-Precision
(:mod:`bgbias.metrics`) in two protocols: *symmetric* (every image in the condition, the
paper's) and *asymmetric* (queries in the condition, gallery the originals less the query's own
original: the product-search case).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import (
    METRIC_NAMES,
    Distance,
    check_distance,
    per_query_metrics,
    retrieval_metrics,
)

BLOCK = 1024  # query rows per similarity block: memory O(BLOCK * N)
RESAMPLES = 1000  # bootstrap resamples of an interval
DRAWS_PER_CHUNK = 4_000_000  # resampled values held at once: memory O(32 MB)


def similarity(queries: torch.Tensor, gallery: torch.Tensor, distance: Distance) -> torch.Tensor:
    """(Q, D) and (N, D) -> (Q, N) higher-is-closer scores: cosine, the inner product (dot), or
    minus the squared euclidean distance."""
    check_distance(distance)
    if distance == "cosine":
        return F.normalize(queries.float(), dim=1) @ F.normalize(gallery.float(), dim=1).T
    if distance == "dot":
        return queries.float() @ gallery.float().T
    return -torch.cdist(queries.float(), gallery.float()).square()


def instance_ranks(
    variants: torch.Tensor,
    originals: torch.Tensor,
    rows: torch.Tensor,
    distance: Distance = "cosine",
) -> tuple[torch.Tensor, torch.Tensor]:
    """For variant k of image ``rows[k]``: the rank of that image's original among all
    ``originals`` (N, D), and the cosine similarity of the two embeddings. Returns (K,) long
    ranks and (K,) float cosines."""
    ranks, cosines = [], []
    for start in range(0, len(rows), BLOCK):
        query = variants[start : start + BLOCK]
        own = rows[start : start + BLOCK]
        scores = similarity(query, originals, distance)
        own_score = scores.gather(1, own[:, None])
        ahead = (scores >= own_score).sum(dim=1) - 1  # every other original at least as close
        ranks.append(ahead + 1)
        cosines.append(F.cosine_similarity(query.float(), originals[own].float(), dim=1))
    return torch.cat(ranks), torch.cat(cosines)


def product_hits(
    variants: torch.Tensor,
    originals: torch.Tensor,
    rows: torch.Tensor,
    labels: np.ndarray,
    distance: Distance = "cosine",
) -> torch.Tensor:
    """(K,) bool: the first original retrieved for variant k of image ``rows[k]`` has that
    image's label (its own original or a sibling view of the same product). A tie between the
    best same-label and the best other-label original counts against it, as for hit@1."""
    labels_t = torch.as_tensor(labels)
    out = []
    for start in range(0, len(rows), BLOCK):
        scores = similarity(variants[start : start + BLOCK], originals, distance)
        same = labels_t[None, :] == labels_t[rows[start : start + BLOCK], None]
        best_same = scores.masked_fill(~same, -math.inf).max(dim=1).values
        best_other = scores.masked_fill(same, -math.inf).max(dim=1).values
        out.append(best_same > best_other)
    return torch.cat(out)


def bootstrap_interval(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95
) -> list[float] | None:
    """The percentile bootstrap interval ``[lo, hi]`` of the mean of per-image ``values`` (N,)
    (NaN: not covered, left out), resampling images with replacement; None without values."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return None
    rng = np.random.default_rng(seed)
    chunk = max(1, DRAWS_PER_CHUNK // len(values))
    means = np.concatenate(
        [
            values[rng.integers(0, len(values), (min(chunk, resamples - done), len(values)))].mean(
                1
            )
            for done in range(0, resamples, chunk)
        ]
    )
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return [float(lo), float(hi)]


def instance_metrics(
    ranks: torch.Tensor, cosines: torch.Tensor, product: torch.Tensor | None = None
) -> dict[str, float]:
    """hit@1, mean rank and mean cosine, plus the cosine distribution (std, 10/50/90th pct);
    with ``product`` ((K,) bool, :func:`product_hits`) the product hit@1 too."""
    c = cosines.double()
    q = torch.quantile(c, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
    extra = {} if product is None else {"product_hit_at_1": float(product.double().mean())}
    return {
        "hit_at_1": float((ranks == 1).double().mean()),
        **extra,
        "mean_rank": float(ranks.double().mean()),
        "cosine_mean": float(c.mean()),
        "cosine_std": float(c.std()) if len(c) > 1 else 0.0,
        "cosine_p10": q[0],
        "cosine_p50": q[1],
        "cosine_p90": q[2],
    }


def asymmetric_metrics(
    queries: torch.Tensor,
    originals: torch.Tensor,
    labels: np.ndarray,
    rows: torch.Tensor,
    distance: Distance = "cosine",
) -> dict[str, float]:
    """MAP@R, P@1, R-Precision of queries ``rows`` (their variants, (K, D)) against all
    originals except each query's own; R = the other images of its class. Queries alone in
    their class are left out, as in the symmetric protocol."""
    labels_t = torch.as_tensor(labels)
    counts = torch.bincount(labels_t)
    query_labels = labels_t[rows]
    relevant = counts[query_labels] - 1
    keep = relevant > 0
    if not bool(keep.any()):
        return dict.fromkeys(METRIC_NAMES, math.nan)
    k = int(relevant.max())
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    for start in range(0, len(rows), BLOCK):
        own = rows[start : start + BLOCK]
        scores = similarity(queries[start : start + BLOCK], originals, distance)
        scores.scatter_(1, own[:, None], -math.inf)  # the query's own original is not a result
        # ties: lower gallery index first, as bgbias.metrics ranks them
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        hits = labels_t[order] == query_labels[start : start + BLOCK, None]
        valid = keep[start : start + BLOCK]
        per_query = per_query_metrics(hits, relevant[start : start + BLOCK])
        for name, values in per_query.items():
            totals[name] += float(values[valid].sum())
    n = int(keep.sum())
    return {name: value / n for name, value in totals.items()}


def symmetric_metrics(
    embeddings: torch.Tensor, labels: np.ndarray, rows: torch.Tensor, distance: Distance = "cosine"
) -> dict[str, float]:
    """MAP@R, P@1, R-Precision with every image of the condition as query and gallery."""
    return retrieval_metrics(embeddings, labels[rows.numpy()], distance=distance)


def mean_and_std(per_repeat: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Nested metric dicts of R repeats -> (mean, sample std (ddof=1)) with the same paths."""
    if not per_repeat:
        return {}, {}
    mean, std = {}, {}
    for key, value in per_repeat[0].items():
        if isinstance(value, dict):
            mean[key], std[key] = mean_and_std([p[key] for p in per_repeat])
        else:
            values = np.array([p[key] for p in per_repeat], dtype=float)
            mean[key] = float(values.mean())
            std[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def breakdown(
    hit: np.ndarray, cosine: np.ndarray, groups: np.ndarray, names: list[str]
) -> dict[str, dict[str, float]]:
    """Per group: images, hit@1 and mean cosine of per-image values (N,) (NaN: not covered)."""
    out = {}
    for g, name in enumerate(names):
        chosen = (groups == g) & ~np.isnan(hit)
        if chosen.any():
            out[name] = {
                "images": int(chosen.sum()),
                "hit_at_1": float(hit[chosen].mean()),
                "cosine_mean": float(cosine[chosen].mean()),
            }
    return out


def area_quartiles(area: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(N,) quartile index of each image's mask area, and each quartile's name with its range."""
    edges = np.quantile(area, [0.0, 0.25, 0.5, 0.75, 1.0])
    groups = np.clip(np.searchsorted(edges[1:-1], area, side="right"), 0, 3)
    names = [f"Q{q + 1} ({100 * edges[q]:.0f}-{100 * edges[q + 1]:.0f}% object)" for q in range(4)]
    return groups, names
