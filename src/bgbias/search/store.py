"""Where an index's vectors live: the interface every engine implements, and their registry.

A store holds per item up to two unit vectors (:data:`bgbias.search.fusion.FIELDS`: the full
image's and its foreground's) addressed by the item's position in ``items.json``. The service
only calls :meth:`VectorStore.search`, :meth:`VectorStore.embedding` and the sizes, so faiss
files (:mod:`.faiss_store`) and a Milvus collection (:mod:`.milvus_store`) serve alike.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BgbiasError, ConfigError
from ..metrics import Distance
from ..registry import Registry
from .fusion import FIELDS, Fusion, parse_fusion

# every store holds unit rows (normalize_rows) searched by inner product: cosine similarity
INDEX_DISTANCE: Distance = "cosine"


def normalize_rows(embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, D) -> float32 rows of unit length (zero rows stay zero)."""
    array = np.ascontiguousarray(
        embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else embeddings,
        dtype=np.float32,
    )
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


class IndexFolderError(BgbiasError):
    """An index folder that is missing, incomplete or damaged."""


class VectorStore(ABC):
    """An index's vectors. ``fields``: the vector fields held (``full`` always)."""

    backend: str
    fields: tuple[str, ...]
    dim: int
    count: int

    @classmethod
    @abstractmethod
    def write(
        cls,
        folder: Path,
        vectors: dict[str, np.ndarray],
        items: list[dict[str, Any]],
        settings: dict[str, Any],
    ) -> dict[str, Any]:
        """Store ``vectors`` (field -> (N, D) unit rows) for ``items``; files go into ``folder``
        (the build folder). Returns the manifest's ``index`` section, from which :meth:`open`
        finds the store again. Nothing may look complete before the manifest is written."""

    @classmethod
    @abstractmethod
    def open(cls, folder: Path, section: dict[str, Any]) -> VectorStore:
        """The store a manifest's ``index`` section describes (IndexFolderError if missing or
        not what the manifest says)."""

    @abstractmethod
    def search_field(self, field: str, queries: np.ndarray, depth: int):
        """(Q, D) unit queries against one field -> (scores (Q, depth), positions), best first,
        -1 where fewer were found."""

    @abstractmethod
    def embedding(self, position: int, field: str = "full") -> np.ndarray:
        """The stored (unit) vector of the item at ``position``: (1, D)."""

    @classmethod
    def discard(cls, section: dict[str, Any]) -> None:
        """Delete what :meth:`write` put outside the build folder (a replaced or failed
        build's Milvus collection); files inside the folder go with it."""
        return None

    def search(
        self, queries: dict[str, np.ndarray], k: int, fusion: str | Fusion = "full"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per field (Q, D) query vectors -> (scores (Q, k'), positions (Q, k')), best first,
        with k' = min(k, count); a fusion rule over both fields needs both queries."""
        from .fusion import candidates

        fusion = parse_fusion(fusion)
        self.check_fields(fusion)
        k = min(k, self.count)
        depth = candidates(k, fusion, self.count)
        scores, positions = {}, {}
        for field in fusion.fields:
            if field not in queries:
                raise ConfigError(f"fusion {fusion.name} needs a {field} query vector")
            scores[field], positions[field] = self.search_field(
                field, self._checked(queries[field]), depth
            )
        return fusion.fuse(scores, positions, k)

    def check_fields(self, fusion: Fusion) -> None:
        missing = [f for f in fusion.fields if f not in self.fields]
        if missing:
            raise ConfigError(
                f"fusion {fusion.name} needs {' and '.join(missing)} vectors, which this index "
                "does not hold; rebuild it with `bgbias index --foreground MASK_MODEL`"
            )

    def _checked(self, queries: np.ndarray) -> np.ndarray:
        queries = normalize_rows(queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ConfigError(f"queries must be (Q, {self.dim}), got {tuple(queries.shape)}")
        return queries

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "fields": list(self.fields), "dim": self.dim}


# backend name -> "module:class", imported on use: faiss and pymilvus load only when needed
STORES: Registry[str] = Registry("vector store")
STORES.register("faiss", "bgbias.search.faiss_store:FaissStore")
STORES.register("milvus", "bgbias.search.milvus_store:MilvusStore")


def store_class(backend: str) -> type[VectorStore]:
    module, _, name = STORES.get(backend).partition(":")
    return getattr(importlib.import_module(module), name)


def check_vectors(vectors: dict[str, np.ndarray], items: list) -> None:
    if "full" not in vectors or set(vectors) - set(FIELDS):
        raise ConfigError(f"vector fields must be full[, foreground], got {sorted(vectors)}")
    for field, array in vectors.items():
        if len(array) != len(items):
            raise ConfigError(f"{len(items)} items but {len(array)} {field} vectors")
