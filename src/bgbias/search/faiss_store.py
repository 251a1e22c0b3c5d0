"""The faiss store: one faiss file per vector field (``index.faiss``, ``foreground.faiss``) in
the index folder, opened memory-mapped where faiss can, so a large index serves from the page
cache instead of the process's own memory; and the faiss index types (``bgbias list
index-types``), compressed ``ivfpq`` sized to a memory budget among them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..registry import Registry
from .store import INDEX_DISTANCE, IndexFolderError, VectorStore, check_vectors

FAISS_FILES = {"full": "index.faiss", "foreground": "foreground.faiss"}
RECALL_K, RECALL_SAMPLE = 10, 1000


@dataclass(frozen=True)
class IndexType:
    """``build(embeddings (N, D) float32 unit rows, max_memory bytes or None) -> (faiss index,
    parameters)``; ``milvus``: the Milvus index type of the same kind."""

    name: str
    build: Callable[[np.ndarray, int | None], tuple[Any, dict[str, Any]]]
    exact: bool
    description: str
    milvus: str


def _flat(embeddings: np.ndarray, max_memory: int | None):
    import faiss

    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(embeddings)
    return index, {}


def _ivf(embeddings: np.ndarray, max_memory: int | None):
    import faiss

    n, dim = embeddings.shape
    # faiss wants >= 39 training points per list; 4 sqrt(N) lists is its usual guidance
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(embeddings)
    index.add(embeddings)
    index.nprobe = max(1, min(nlist, 16))
    return index, {"nlist": nlist, "nprobe": index.nprobe}


def _hnsw(embeddings: np.ndarray, max_memory: int | None):
    import faiss

    index = faiss.index_factory(embeddings.shape[1], "HNSW32", faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(embeddings)
    index.hnsw.efSearch = 64
    return index, {"M": 32, "efConstruction": 80, "efSearch": 64}


def _ivfpq(embeddings: np.ndarray, max_memory: int | None):
    from .compressed import build_ivfpq

    return build_ivfpq(embeddings, max_memory, recall_at_k)


INDEX_TYPES: Registry[IndexType] = Registry("index type")
for _entry in (
    IndexType("flat", _flat, True, "exact inner-product search (faiss IndexFlatIP)", "FLAT"),
    IndexType("ivf", _ivf, False, "inverted lists, 4 sqrt(N) of them, 16 probed", "IVF_FLAT"),
    IndexType("hnsw", _hnsw, False, "HNSW graph, 32 links, efSearch 64", "HNSW"),
    IndexType(
        "ivfpq",
        _ivfpq,
        False,
        "compressed: inverted lists of product-quantised codes sized to "
        "--max-memory (default 1/16 of flat), trained on a sample",
        "IVF_PQ",
    ),
):
    INDEX_TYPES.register(_entry.name, _entry)


def recall_at_k(index, embeddings: np.ndarray, k: int = RECALL_K, sample: int = RECALL_SAMPLE):
    """Mean share of the exact top-``k`` that ``index`` also returns, over a seeded sample of the
    indexed embeddings as queries."""
    import faiss

    rows = np.random.default_rng(0).permutation(len(embeddings))[:sample]
    queries = embeddings[rows]
    k = min(k, len(embeddings))
    exact = faiss.IndexFlatIP(embeddings.shape[1])
    exact.add(embeddings)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = [len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True)]
    return float(np.mean(hits) / k), len(rows)


def _write(index, path: Path) -> None:
    import faiss

    try:
        faiss.write_index(index, str(path))
    except RuntimeError as exc:  # faiss reports a full disk as a failed fwrite
        raise OutputError(f"{path}: cannot write the index ({str(exc).splitlines()[0]})") from None


def _read(path: Path):
    """Memory-mapped (faiss's IO_FLAG_MMAP_IFC: flat codes, IVF lists, HNSW's vectors): the OS
    pages the file in as searches touch it, as page cache it can drop again, so RAM stays small
    for large indexes (a 200 k x 64 flat file: 1 MB resident after opening, against 49 MB
    read). Faiss maps only when given the file's name, not a reader object."""
    import faiss

    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    except RuntimeError:  # an index type faiss cannot map
        return faiss.read_index(str(path))


class FaissStore(VectorStore):
    backend = "faiss"

    def __init__(self, indexes: dict[str, Any], section: dict[str, Any]):
        self.indexes = indexes
        self.section = section
        self.fields = tuple(indexes)
        self.dim = int(indexes["full"].d)
        self.count = int(indexes["full"].ntotal)

    @classmethod
    def write(cls, folder, vectors, items, settings) -> dict[str, Any]:
        check_vectors(vectors, items)
        kind = INDEX_TYPES.get(settings.get("index_type", "flat"))
        params, recall, nbytes = {}, {}, 0
        budget = settings.get("max_memory")  # for the whole index: shared by its fields
        for field, embeddings in vectors.items():
            index, params[field] = kind.build(embeddings, budget and budget // len(vectors))
            if not kind.exact:
                value, sample = recall_at_k(index, embeddings)
                recall[field] = {"recall_at_10": round(value, 4), "queries": sample}
            _write(index, folder / FAISS_FILES[field])
            nbytes += (folder / FAISS_FILES[field]).stat().st_size
        return {
            "backend": cls.backend,
            "type": kind.name,
            "exact": kind.exact,
            "distance": INDEX_DISTANCE,
            "fields": list(vectors),
            "params": params["full"],
            "recall": recall.get("full"),
            "fields_params": params,
            "fields_recall": recall or None,
            "bytes": nbytes,
        }

    @classmethod
    def open(cls, folder, section) -> FaissStore:
        indexes = {}
        for field in section.get("fields", ["full"]):
            try:
                indexes[field] = _read(folder / FAISS_FILES[field])
            except (OSError, RuntimeError) as exc:
                raise IndexFolderError(f"{folder}: damaged index ({exc})") from None
            if hasattr(indexes[field], "make_direct_map"):  # IVF: reconstruct() by position
                indexes[field].make_direct_map()
        return cls(indexes, section)

    def search_field(self, field, queries, depth):
        return self.indexes[field].search(queries, depth)

    def embedding(self, position, field="full"):
        return self.indexes[field].reconstruct(int(position))[None, :]

    @property
    def nbytes(self) -> int:
        return int(self.section.get("bytes") or 0)
