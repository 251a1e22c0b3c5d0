"""Retrieval metrics of a test set against itself: MAP@R, Precision@1, R-Precision.

Definitions follow pytorch-metric-learning's ``AccuracyCalculator(k="max_bin_count")`` with
``get_accuracy(embeddings, labels)`` (the query set is its own reference, each query excluded
from its own neighbours), and give the same values:

* R of a query = number of *other* items with its label; queries with R = 0 (a class of one
  image) are left out of every average, as PML does (they still appear as neighbours of others).
* Similarity (a :data:`Distance`): cosine by default (embeddings are L2-normalised unless
  their norms are already within 1e-5 of 1, as a bgbias model's are), ``"euclidean"``, or
  ``"dot"`` (the inner product of the embeddings as they are). Cosine and euclidean rank by
  squared L2 distance in float32, computed by faiss exactly as PML's default ``FaissKNN`` does,
  so results match PML to the last bit on the same input; dot by minus the inner product.
* Ties: equal distances rank by item index (lower first), so exact duplicate embeddings always
  come out in index order (any library orders them arbitrarily; only there can PML differ).

Without faiss, or with ``device="cuda"``, blocked torch matrix products give the same
neighbours up to float32 rounding of near-ties; memory stays at ``O(block * N)`` either way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch

from .errors import BgbiasError

EXTRA_CANDIDATES = 4  # beyond the k needed, to see ties at the k-th place
METRIC_NAMES = ("map_at_r", "precision_at_1", "r_precision")
# How two embeddings are compared, everywhere one is named (metrics, audit.json, ...)
Distance = Literal["cosine", "dot", "euclidean"]
DISTANCES: tuple[str, ...] = get_args(Distance)


class MetricsError(BgbiasError):
    """Embeddings that cannot be evaluated (NaN/inf, wrong shapes)."""


def distance_of(distance: Any) -> Distance:
    """The :data:`Distance` a pytorch-metric-learning distance (a loss's ``loss.distance``)
    compares embeddings by: CosineSimilarity -> cosine, DotProductSimilarity -> dot, LpDistance
    with p=2 -> euclidean."""
    from pytorch_metric_learning.distances import (
        CosineSimilarity,
        DotProductSimilarity,
        LpDistance,
    )

    if isinstance(distance, CosineSimilarity):  # a subclass of DotProductSimilarity
        return "cosine"
    if isinstance(distance, DotProductSimilarity):
        return "dot"
    if isinstance(distance, LpDistance) and distance.p == 2:
        return "euclidean"
    raise MetricsError(f"no retrieval ranking for the distance {type(distance).__name__}")


def check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")


def retrieval_metrics(
    embeddings: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence[int],
    distance: Distance = "cosine",
    backend: str = "auto",
    block_size: int | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """MAP@R, Precision@1 and R-Precision (fractions in [0, 1]) of every item against the rest.

    embeddings: (N, D) float; labels: (N,) integers. Returns ``{"map_at_r", "precision_at_1",
    "r_precision"}``; all NaN when no class has two items. ``device``: where the neighbour
    search runs (``"cuda"``: torch on the GPU, bench/metrics.py --device cuda measures it).
    """
    emb, lab = _validate(embeddings, labels)
    _, inverse, counts = torch.unique(lab, return_inverse=True, return_counts=True)
    relevant = counts[inverse] - 1  # R per query
    queries = relevant > 0
    if not bool(queries.any()):
        return dict.fromkeys(METRIC_NAMES, float("nan"))
    k = int(relevant.max())
    neighbours = nearest_neighbors(
        emb, k, distance=distance, backend=backend, block_size=block_size, device=device
    )
    hits = lab[neighbours] == lab[:, None]  # (N, k)
    per_query = per_query_metrics(hits, relevant)
    return {name: float(values[queries].mean()) for name, values in per_query.items()}


def per_query_metrics(hits: torch.Tensor, relevant: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each query's MAP@R, P@1 and R-precision from its ranked results.

    hits: (Q, k) bool, result i of query q has q's class, k >= max(relevant);
    relevant: (Q,) R, the number of other images of q's class. -> name: (Q,) float64.
    """
    rank = torch.arange(1, hits.shape[1] + 1)
    hits_r = hits & (rank[None, :] <= relevant[:, None])
    precision_at_i = torch.cumsum(hits_r, dim=1).double() / rank.double()
    r = relevant.double().clamp(min=1)
    return {
        "map_at_r": (precision_at_i * hits_r).sum(dim=1) / r,
        "precision_at_1": hits[:, 0].double(),
        "r_precision": hits_r.sum(dim=1).double() / r,
    }


def nearest_neighbors(
    embeddings: torch.Tensor,
    k: int,
    distance: Distance = "cosine",
    backend: str = "auto",
    block_size: int | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """(N, k) indices of each item's k nearest other items, best first (ties: lower index).

    ``backend="auto"``: faiss on the CPU when installed, else (and on a GPU ``device``) torch.
    """
    device = torch.device(device)
    check_distance(distance)
    emb = embeddings.float().cpu().contiguous()
    if distance == "cosine" and not _unit_norm(emb):
        emb = torch.nn.functional.normalize(emb, dim=1)
    n = len(emb)
    k = min(k, n - 1)
    if k <= 0:
        return torch.empty(n, 0, dtype=torch.long)
    if backend == "auto":
        backend = "faiss" if _has_faiss() and device.type == "cpu" else "torch"
    if backend not in ("faiss", "torch"):
        raise ValueError(f"backend must be 'auto', 'faiss' or 'torch', got {backend!r}")
    search = functools.partial(
        _faiss_search if backend == "faiss" else functools.partial(_torch_search, device=device),
        inner_product=distance == "dot",
    )

    wanted = min(n, k + 1 + EXTRA_CANDIDATES)  # the query itself + k + spare
    dist, ids = search(emb, emb, wanted, block_size)
    ranked, ranked_dist = _rank(dist, ids, n)
    # an exact tie between the k-th neighbour and the last candidate may hide tied items
    # beyond the candidates: search those rows exhaustively
    unsure = (
        (ranked_dist[:, k - 1] == ranked_dist[:, -1])
        if wanted < n
        else torch.zeros(n, dtype=torch.bool)
    )
    rows = torch.nonzero(unsure).flatten()
    if len(rows):
        dist, ids = search(emb[rows], emb, n, block_size)
        full, _ = _rank(dist, ids, n, rows)
        ranked[rows] = full[:, : ranked.shape[1]]
    return ranked[:, :k]


def _unit_norm(emb: torch.Tensor) -> bool:
    # renormalising unit vectors would move them by an ulp and reorder float32 near-ties
    return bool(((emb * emb).sum(dim=1) - 1).abs().max() < 1e-5) if len(emb) else True


def _rank(dist: torch.Tensor, ids: torch.Tensor, n: int, rows: torch.Tensor | None = None):
    """Drop each query from its own list, order by (distance, index)."""
    queries = torch.arange(len(ids)) if rows is None else rows
    is_self = ids == queries[:, None]
    dist = dist.masked_fill(is_self, math.inf)
    by_id = torch.argsort(ids, dim=1, stable=True)
    order = by_id.gather(1, torch.argsort(dist.gather(1, by_id), dim=1, stable=True))
    return ids.gather(1, order)[:, :-1], dist.gather(1, order)[:, :-1]


def _validate(embeddings, labels) -> tuple[torch.Tensor, torch.Tensor]:
    emb = torch.as_tensor(embeddings)
    lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if emb.dim() != 2:
        raise MetricsError(f"embeddings must be (N, D), got shape {tuple(emb.shape)}")
    if lab.dim() != 1 or len(lab) != len(emb):
        raise MetricsError(f"labels must be (N,) = ({len(emb)},), got shape {tuple(lab.shape)}")
    if not emb.is_floating_point():
        raise MetricsError(f"embeddings must be floating point, got {emb.dtype}")
    if lab.is_floating_point():
        if not bool(torch.all(lab == lab.round())):
            raise MetricsError("labels must be integers")
        lab = lab.long()
    finite = torch.isfinite(emb).all(dim=1)
    if not bool(finite.all()):
        first = int(torch.nonzero(~finite)[0])
        raise MetricsError(
            f"embedding of item {first} is not finite (NaN or inf); "
            f"{int((~finite).sum())} bad item(s) in all"
        )
    return emb.detach().cpu(), lab.cpu().long()


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss_search(
    queries: torch.Tensor,
    data: torch.Tensor,
    k: int,
    block_size: int | None,
    inner_product: bool = False,
):
    """Squared L2 distances (or minus inner products) and ids of the k nearest, exactly as
    PML's default FaissKNN."""
    import faiss

    index = (faiss.IndexFlatIP if inner_product else faiss.IndexFlatL2)(data.shape[1])
    index.add(data.numpy())
    # faiss computes small query batches without BLAS (other rounding): pad to its threshold
    padded = (
        queries
        if len(queries) >= 20
        else torch.cat([queries, queries[:1].expand(20 - len(queries), -1)])
    )
    dist, ids = index.search(padded.numpy(), k)
    dist = torch.from_numpy(dist[: len(queries)])
    return (-dist if inner_product else dist), torch.from_numpy(ids[: len(queries)]).long()


def _torch_search(
    queries: torch.Tensor,
    data: torch.Tensor,
    k: int,
    block_size: int | None,
    device: torch.device | str = "cpu",
    inner_product: bool = False,
):
    """The same, by blocked matrix products on ``device`` (no faiss); memory O(block * N)."""
    n = len(data)
    block = block_size or max(1, min(len(queries), (256 * 2**20) // (4 * n)))  # ~256 MB
    data = data.to(device)
    squared = (data * data).sum(dim=1)
    dist = torch.empty(len(queries), k)
    ids = torch.empty(len(queries), k, dtype=torch.long)
    for start in range(0, len(queries), block):
        q = queries[start : start + block].to(device)
        if inner_product:
            d = -(q @ data.T)
        else:
            d = (q * q).sum(dim=1, keepdim=True) + squared[None, :] - 2.0 * (q @ data.T)
        found = d.topk(k, dim=1, largest=False)
        dist[start : start + block] = found.values.cpu()
        ids[start : start + block] = found.indices.cpu()
    return dist, ids
