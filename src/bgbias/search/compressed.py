"""``ivfpq``: a compressed faiss index sized to a memory budget, the way autofaiss sizes one
(autofaiss itself pins numpy < 2 and pandas < 3, which this environment does not allow).

The budget buys, per item, ``m`` bytes of product-quantised code (8 bits per sub-vector) and
faiss's 8-byte id in its inverted list; the fixed part is the coarse centroids (``nlist x D``
floats) and the PQ codebooks (``256 x D`` floats). The largest ``m`` that divides ``D`` and
fits is chosen: the code size is what decides recall (measured on clustered 128-d data, 200 k
items: 16 bytes 0.54, 32 bytes 0.72, 64 bytes 0.91 recall@10; probing more lists changed
nothing). An OPQ rotation (autofaiss's default) bought +0.02 for 2.5x the training time, so it
is left out. The list count follows faiss's guidance (about 4 sqrt(N), a power of two, >= 39
training points a list), and training runs on a seeded sample of 100 k, not the whole
catalogue, so a million items build in about a minute on 2 cores. ``nprobe`` is then tuned
on held-in queries: the smallest that reaches the recall of probing 4x more lists, within 0.005.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError

TRAIN_POINTS_PER_LIST = 39  # faiss warns below this
MAX_TRAIN = 100_000  # k-means and PQ training sample
ID_BYTES = 8
CODE_SIZES = (64, 48, 32, 24, 16, 12, 8, 4, 2, 1)  # faiss PQ: at most 64 bytes at 8 bits
NPROBES = (4, 8, 16, 32, 64, 128, 256)
TUNE_QUERIES = 500
# of the coarse quantiser, under faiss's 25: the lists only route queries, and the codes, not the
# routing, limit recall (probing 4x more lists changed nothing)
KMEANS_ITERATIONS = 10


def default_budget(n: int, dim: int) -> int:
    """1/16 of the exact index's bytes."""
    return n * dim * 4 // 16


def list_count(n: int) -> int:
    nlist = 2 ** int(np.round(np.log2(max(1.0, 4 * np.sqrt(n)))))
    return int(max(1, min(nlist, n // TRAIN_POINTS_PER_LIST)))


def code_bits(n: int) -> int:
    """Bits per sub-vector code: 8, fewer for a catalogue too small to train 256 centroids."""
    return int(min(8, max(1, np.log2(max(2, n // TRAIN_POINTS_PER_LIST)))))


def plan(n: int, dim: int, max_memory: int | None) -> dict[str, int]:
    """The list count, sub-vector count ``m`` and code bits of an ivfpq index of ``n``
    ``dim``-d vectors within ``max_memory`` bytes (None: 1/16 of flat, or the smallest codes
    where even that is too little, as for a tiny catalogue); ConfigError when a given budget
    cannot hold even the smallest codes."""
    nlist, nbits = list_count(n), code_bits(n)
    fixed = 4 * dim * (nlist + 2**nbits)
    fitting = [m for m in CODE_SIZES if dim % m == 0]
    for m in fitting:
        total = fixed + n * (-(-m * nbits // 8) + ID_BYTES)
        if total <= (max_memory or default_budget(n, dim)) or (
            max_memory is None and m == fitting[-1]
        ):
            return {"nlist": nlist, "m": m, "nbits": nbits, "estimated_bytes": total}
    least = fixed + n * (1 + ID_BYTES)
    raise ConfigError(
        f"--max-memory {max_memory} bytes: an ivfpq index of {n} {dim}-d vectors needs at "
        f"least {least} bytes (ids and 1-byte codes)"
    )


def build_ivfpq(
    embeddings: np.ndarray, max_memory: int | None, recall_at_k: Callable[..., tuple[float, int]]
) -> tuple[Any, dict[str, Any]]:
    """An IVF-PQ index of ``embeddings`` (N, D) within ``max_memory`` bytes, nprobe tuned with
    ``recall_at_k(index, embeddings, sample=...)`` (the store's measure, passed in so this
    module stays a leaf)."""
    import faiss

    n, dim = embeddings.shape
    chosen = plan(n, dim, max_memory)
    nlist, m, nbits = chosen["nlist"], chosen["m"], chosen["nbits"]
    key = f"IVF{nlist},PQ{m}x{nbits}"
    index = faiss.index_factory(dim, key, faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(index).cp.niter = KMEANS_ITERATIONS
    rng = np.random.default_rng(0)
    sample = embeddings[np.sort(rng.permutation(n)[:MAX_TRAIN])]
    index.train(sample)
    index.add(embeddings)
    ivf = faiss.extract_index_ivf(index)
    nprobe, recall = _tune_nprobe(index, ivf, embeddings, recall_at_k)
    return index, {
        "factory": key,
        "nlist": nlist,
        "m": m,
        "nbits": nbits,
        "nprobe": nprobe,
        "max_memory": max_memory or default_budget(n, dim),
        "train_sample": len(sample),
        "estimated_bytes": chosen["estimated_bytes"],
        "tuning_recall_at_10": round(recall, 4),
    }


def _tune_nprobe(index, ivf, embeddings, recall_at_k) -> tuple[int, float]:
    """The smallest nprobe within 0.005 of the recall of one 4x larger (or of all lists)."""
    results: dict[int, float] = {}

    def recall(nprobe: int) -> float:
        if nprobe not in results:
            ivf.nprobe = nprobe
            results[nprobe] = recall_at_k(index, embeddings, sample=TUNE_QUERIES)[0]
        return results[nprobe]

    choices = [p for p in NPROBES if p < ivf.nlist] + [ivf.nlist]
    for nprobe in choices:
        if recall(nprobe) >= recall(min(4 * nprobe, ivf.nlist)) - 0.005:
            break
    ivf.nprobe = nprobe
    return nprobe, results[nprobe]
