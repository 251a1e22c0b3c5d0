"""Background-robust search without retraining: every item holds two vectors, the full image's
and its foreground's (background removed by a mask model at index time), and a query brings
the same two. A fusion rule turns the two rankings into one.

``full``: the full query against full items (the plain search). ``foreground``: the query's
foreground against the items' foregrounds. ``rrf``: reciprocal rank fusion of the two rankings,
``sum 1 / (RRF_K + rank)`` (rank from 1), robust to the two score scales differing.
``weighted:W``: ``W * full + (1 - W) * foreground`` cosine similarity.

Faiss stores fuse here, in numpy; the Milvus store hands the same rule to Milvus's
``hybrid_search`` rankers (:meth:`Fusion.milvus_ranker`), so both engines rank alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

RRF_K = 60  # the constant of Cormack et al. (2009) and Milvus's RRFRanker default
FIELDS = ("full", "foreground")


@dataclass(frozen=True)
class Fusion:
    """A parsed ``--fusion`` value. ``weight``: the full vector's share (weighted only)."""

    kind: str
    weight: float = 1.0

    @property
    def name(self) -> str:
        return f"weighted:{self.weight:g}" if self.kind == "weighted" else self.kind

    @property
    def fields(self) -> tuple[str, ...]:
        """The vector fields this rule searches."""
        if self.kind in ("full", "foreground"):
            return (self.kind,)
        return FIELDS

    @property
    def needs_foreground(self) -> bool:
        return "foreground" in self.fields

    def milvus_ranker(self):
        from pymilvus import RRFRanker, WeightedRanker

        if self.kind == "rrf":
            return RRFRanker(RRF_K)
        # raw cosine scores, as the faiss side fuses them (Milvus would arctan-squash them)
        return WeightedRanker(self.weight, 1.0 - self.weight, norm_score=False)

    def fuse(
        self, scores: dict[str, np.ndarray], positions: dict[str, np.ndarray], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per field, (Q, k') scores and positions best first (-1: none) -> fused (Q, k)."""
        if len(self.fields) == 1:
            field = self.fields[0]
            return scores[field][:, :k], positions[field][:, :k]
        rows = len(positions["full"])
        out_scores = np.full((rows, k), -np.inf, dtype=np.float32)
        out_positions = np.full((rows, k), -1, dtype=np.int64)
        for row in range(rows):
            total: dict[int, float] = {}
            for field, share in zip(FIELDS, (self.weight, 1.0 - self.weight), strict=True):
                for rank, (score, position) in enumerate(
                    zip(scores[field][row].tolist(), positions[field][row].tolist(), strict=True)
                ):
                    if position < 0:
                        continue
                    part = 1.0 / (RRF_K + rank + 1) if self.kind == "rrf" else share * score
                    total[position] = total.get(position, 0.0) + part
            # ties broken by position, so faiss and Milvus agree on equal fused scores
            best = sorted(total.items(), key=lambda entry: (-entry[1], entry[0]))[:k]
            for column, (position, score) in enumerate(best):
                out_positions[row, column] = position
                out_scores[row, column] = score
        return out_scores, out_positions


def candidates(k: int, fusion: Fusion, size: int) -> int:
    """How deep to search each field: a fused top-k may hold items that ranked below k in one
    field, so each field is searched deeper (4k, as Milvus's hybrid search does per request)."""
    return min(size, k if len(fusion.fields) == 1 else 4 * k)


def parse_fusion(value: str | Fusion) -> Fusion:
    """``full``, ``foreground``, ``rrf`` or ``weighted:W`` (0 <= W <= 1: the full vector's
    share) -> :class:`Fusion`; anything else raises ConfigError naming the option."""
    if isinstance(value, Fusion):
        return value
    kind, _, weight = str(value).partition(":")
    if kind in ("full", "foreground", "rrf") and not weight:
        return Fusion(kind)
    if kind == "weighted":
        try:
            share = float(weight)
        except ValueError:
            share = -1.0
        if 0.0 <= share <= 1.0:
            return Fusion("weighted", share)
    raise ConfigError(
        f"--fusion {value!r}: expected full, foreground, rrf or weighted:W with 0 <= W <= 1"
    )
