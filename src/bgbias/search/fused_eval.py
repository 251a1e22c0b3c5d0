"""Fused dual-vector search as an evaluation protocol (``bgbias evaluate --fusion``).

Every test image is a query and a gallery item, as in the paper. :class:`FusedEmbedder` gives
each image, clean or with its background replaced, both vectors an index holds: the model's
embedding of the image as it is, and of the image with its background removed by the mask model
(predicted on that very image) and filled flat; side by side as one (B, 2D) row.
:func:`fused_retrieval_metrics` ranks every other image by the fusion rule over the whole test
set (no candidate cut-off: an evaluation has no latency to save) and computes MAP@R, P@1 and
R-Precision as :func:`bgbias.metrics.retrieval_metrics` does.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..metrics import METRIC_NAMES, per_query_metrics, retrieval_metrics
from ..removal import BackgroundRemover, MeasuredEmbedder
from .fusion import RRF_K, Fusion

ROW_BLOCK = 1024  # query rows ranked at once: memory O(block x N)


class FusedEmbedder(MeasuredEmbedder):
    """``inner``'s full and foreground embeddings, each L2-normalised, concatenated."""

    def __init__(self, inner, remover: BackgroundRemover, fusion: Fusion):
        super().__init__(inner, remover)
        self.fusion = fusion
        self.label = f"{inner.label} + fused dual vectors ({fusion.name}, {remover.name})"

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        started = time.perf_counter()
        full = self.inner(images)
        self._sync()
        embedded = time.perf_counter()
        normalization = self.recipe.normalization
        rgb, _ = self.remover(normalization.inverse(images).clamp(0, 1), self.recipe)
        masked = time.perf_counter()
        foreground = self.inner(normalization(rgb))
        self._sync()
        done = time.perf_counter()
        with self._lock:
            self._seconds["mask"] += masked - embedded
            self._seconds["embed"] += (embedded - started) + (done - masked)
            self._images += len(images)
        unit = torch.nn.functional.normalize
        return torch.cat([unit(full, dim=1), unit(foreground, dim=1)], dim=1)

    def describe(self) -> dict[str, Any]:
        description = super().describe()
        description["fusion"] = description.pop("test_time_removal") | {"rule": self.fusion.name}
        return description


def fused_retrieval_metrics(
    embeddings: torch.Tensor, labels: torch.Tensor, fusion: Fusion
) -> dict[str, float]:
    """MAP@R, P@1, R-Precision of (N, 2D) [full | foreground] unit rows under ``fusion``."""
    dim = embeddings.shape[1] // 2
    full, foreground = embeddings[:, :dim].float(), embeddings[:, dim:].float()
    if fusion.kind == "full":
        return retrieval_metrics(full, labels)
    if fusion.kind == "foreground":
        return retrieval_metrics(foreground, labels)
    if fusion.kind == "weighted":
        # W cos(f, f') + (1 - W) cos(g, g') is the inner product of [sqrt(W) f, sqrt(1-W) g]
        # rows, themselves of unit length: exact nearest neighbours of the joined rows
        w = fusion.weight
        return retrieval_metrics(torch.cat([w**0.5 * full, (1 - w) ** 0.5 * foreground], 1), labels)
    return _rrf_metrics(full, foreground, torch.as_tensor(labels).long())


def _rrf_metrics(full, foreground, labels) -> dict[str, float]:
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    relevant = counts[inverse] - 1
    queries = relevant > 0
    if not bool(queries.any()):
        return dict.fromkeys(METRIC_NAMES, float("nan"))
    n, k = len(labels), int(relevant.max())
    neighbours = torch.empty(n, k, dtype=torch.long)
    positions = torch.arange(n)
    for start in range(0, n, ROW_BLOCK):
        rows = positions[start : start + ROW_BLOCK]
        fused = torch.zeros(len(rows), n, dtype=torch.float64)
        for vectors in (full, foreground):
            similarity = vectors[rows] @ vectors.T
            similarity[torch.arange(len(rows)), rows] = -torch.inf  # a query is not its own hit
            order = torch.argsort(similarity, dim=1, descending=True, stable=True)
            ranks = torch.empty_like(order)
            ranks.scatter_(1, order, positions.expand(len(rows), n).contiguous())
            fused += 1.0 / (RRF_K + ranks + 1).double()
        fused[torch.arange(len(rows)), rows] = -torch.inf
        # ties by position, as the search side breaks them
        neighbours[rows] = torch.argsort(fused, dim=1, descending=True, stable=True)[:, :k]
    hits = labels[neighbours] == labels[:, None]
    per_query = per_query_metrics(hits, relevant)
    return {name: float(values[queries].mean()) for name, values in per_query.items()}
