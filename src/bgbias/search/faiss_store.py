"""The faiss store: one faiss file per vector field (``index.faiss``, ``foreground.faiss``) in
the index folder, opened memory-mapped where faiss can, so a large index serves from the page
cache instead of the process's own memory; and the faiss index types (``bgbias list
index-types``), compressed ``ivfpq`` sized to a memory budget among them, which re-ranks its
candidates with exact vectors kept beside it (:mod:`.rerank`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..registry import Registry
from .rerank import DEFAULT_RERANK, Reranked, open_exact_vectors, write_exact_vectors
from .store import INDEX_DISTANCE, IndexFolderError, VectorStore, check_vectors

FAISS_FILES = {"full": "index.faiss", "foreground": "foreground.faiss"}
# the exact vectors an ivfpq index re-ranks with (memory-mapped, read for the candidates only)
EXACT_FILES = {"full": "vectors.npy", "foreground": "foreground_vectors.npy"}
RECALL_K, RECALL_SAMPLE = 10, 1000


@dataclass(frozen=True)
class IndexType:
    """``build(embeddings (N, D) float32 unit rows, max_memory bytes or None, rerank factor)
    -> (faiss index, parameters)``; ``milvus``: the Milvus index type of the same kind;
    ``reranks``: searched through :class:`.rerank.Reranked` unless ``rerank`` is 0."""

    name: str
    build: Callable[[np.ndarray, int | None, int], tuple[Any, dict[str, Any]]]
    exact: bool
    description: str
    milvus: str
    reranks: bool = False


def _flat(embeddings: np.ndarray, max_memory: int | None, rerank: int = 0):
    import faiss

    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(embeddings)
    return index, {}


def _ivf(embeddings: np.ndarray, max_memory: int | None, rerank: int = 0):
    import faiss

    n, dim = embeddings.shape
    # faiss wants >= 39 training points per list; 4 sqrt(N) lists is its usual guidance
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(embeddings)
    index.add(embeddings)
    index.nprobe = max(1, min(nlist, 16))
    return index, {"nlist": nlist, "nprobe": index.nprobe}


def _hnsw(embeddings: np.ndarray, max_memory: int | None, rerank: int = 0):
    import faiss

    index = faiss.index_factory(embeddings.shape[1], "HNSW32", faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(embeddings)
    index.hnsw.efSearch = 64
    return index, {"M": 32, "efConstruction": 80, "efSearch": 64}


def _ivfpq(embeddings: np.ndarray, max_memory: int | None, rerank: int = DEFAULT_RERANK):
    from .compressed import build_ivfpq

    exact: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # one exact search per sample size

    def measure(index, vectors, sample: int = RECALL_SAMPLE):  # tuned on the serving search
        if sample not in exact:
            exact[sample] = exact_top_k(vectors, sample=sample)
        return recall_at_k(searchable(index, vectors, rerank), vectors, exact=exact[sample])

    index, params = build_ivfpq(embeddings, max_memory, measure)
    return index, params | {"rerank": rerank}


def searchable(index, exact: np.ndarray, rerank: int):
    """``index`` re-ranking ``k x rerank`` candidates against ``exact`` (N, D), or as it is
    for ``rerank`` 0."""
    return Reranked(index, exact, rerank) if rerank else index


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
        "--max-memory (default 1/16 of flat), trained on a sample; re-ranks with the exact "
        "vectors kept on disk (--rerank)",
        "IVF_PQ",
        reranks=True,
    ),
):
    INDEX_TYPES.register(_entry.name, _entry)


def exact_top_k(
    embeddings: np.ndarray, k: int = RECALL_K, sample: int = RECALL_SAMPLE
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of the indexed ``embeddings`` (N, D) as queries (S, D), and their exact
    top-``k`` positions (S, k): what :func:`recall_at_k` compares with."""
    import faiss

    rows = np.random.default_rng(0).permutation(len(embeddings))[:sample]
    exact = faiss.IndexFlatIP(embeddings.shape[1])
    exact.add(embeddings)
    return embeddings[rows], exact.search(embeddings[rows], min(k, len(embeddings)))[1]


def recall_at_k(
    index,
    embeddings: np.ndarray,
    k: int = RECALL_K,
    sample: int = RECALL_SAMPLE,
    exact: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Mean share of the exact top-``k`` that ``index`` also returns, over a seeded sample of the
    indexed embeddings as queries; ``exact``: :func:`exact_top_k`'s result for these arguments,
    when one index is measured several times (the exact search scans every item)."""
    queries, truth = exact if exact is not None else exact_top_k(embeddings, k, sample)
    _, found = index.search(queries, truth.shape[1])
    hits = [len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True)]
    return float(np.mean(hits) / truth.shape[1]), len(queries)


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
        rerank = settings.get("rerank")
        rerank = (DEFAULT_RERANK if rerank is None else int(rerank)) if kind.reranks else 0
        params, recall, nbytes, exact_bytes = {}, {}, 0, 0
        budget = settings.get("max_memory")  # for the whole index: shared by its fields
        for field, embeddings in vectors.items():
            index, params[field] = kind.build(embeddings, budget and budget // len(vectors), rerank)
            if not kind.exact:
                exact = exact_top_k(embeddings)
                served = searchable(index, embeddings, rerank)
                value, sample = recall_at_k(served, embeddings, exact=exact)
                recall[field] = {"recall_at_10": round(value, 4), "queries": sample}
                if rerank:  # what the codes alone find, for comparison
                    codes = recall_at_k(index, embeddings, exact=exact)[0]
                    recall[field]["without_rerank"] = round(codes, 4)
            _write(index, folder / FAISS_FILES[field])
            nbytes += (folder / FAISS_FILES[field]).stat().st_size
            if rerank:
                write_exact_vectors(folder / EXACT_FILES[field], embeddings)
                exact_bytes += (folder / EXACT_FILES[field]).stat().st_size
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
            "rerank": rerank,
            "exact_vectors_bytes": exact_bytes,  # on disk, memory-mapped: not in "bytes"
        }

    @classmethod
    def open(cls, folder, section) -> FaissStore:
        indexes = {}
        rerank = int(section.get("rerank") or 0)
        for field in section.get("fields", ["full"]):
            try:
                index = _read(folder / FAISS_FILES[field])
            except (OSError, RuntimeError) as exc:
                raise IndexFolderError(f"{folder}: damaged index ({exc})") from None
            if rerank:  # reconstruct() reads the exact vectors
                exact = open_exact_vectors(folder / EXACT_FILES[field], index.ntotal, index.d)
                index = Reranked(index, exact, rerank)
            elif hasattr(index, "make_direct_map"):  # IVF: reconstruct() by position
                index.make_direct_map()
            indexes[field] = index
        return cls(indexes, section)

    def search_field(self, field, queries, depth):
        return self.indexes[field].search(queries, depth)

    def embedding(self, position, field="full"):
        return self.indexes[field].reconstruct(int(position))[None, :]

    @property
    def nbytes(self) -> int:
        return int(self.section.get("bytes") or 0)
