"""Catalogue scale: build time, bytes, recall@10 and single-query p50 of the faiss index types on
seeded, clustered embeddings; resident memory of a served (memory-mapped) index; Milvus Lite
against faiss flat through the same store interface the server uses.

    python bench/scale.py [--items 1000000] [--milvus-items 100000] [--max-memory 64] [--rerank 10]

The embeddings: ``--clusters`` unit centres in ``--dim`` dimensions, each item a centre plus
noise whose variance decays as 1/i over a random rotation (``--decay``; real embeddings' spectra
decay too), renormalised; queries are fresh draws of the same law. Recall@10: share of the
exact top-10 an index returns, over 1,000 of the indexed vectors as queries (what `bgbias
index` reports). p50: median over single queries, k = 10, in this process. Each ivfpq index is
measured twice: from its codes alone, and re-ranking ``k x --rerank`` candidates with the exact
vectors memory-mapped beside it (what `bgbias index` builds by default).

Targets (issue 24): ivfpq recall@10 >= 0.90 at <= 1/16 of flat's bytes; a 1 M build within 2
minutes on 2 cores; Milvus Lite p50 <= 3x faiss flat at 100 k.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

print = partial(print, flush=True)  # noqa: A001 - progress of a long run, also when piped

from bgbias.search.compressed import default_budget  # noqa: E402
from bgbias.search.faiss_store import (  # noqa: E402
    EXACT_FILES,
    FAISS_FILES,
    INDEX_TYPES,
    FaissStore,
    _write,
    recall_at_k,
)
from bgbias.search.rerank import write_exact_vectors  # noqa: E402

K = 10


def clustered(n: int, dim: int, clusters: int, seed: int, decay: float, spread: float = 0.6):
    """(n, dim) float32 unit rows: seeded centres plus decaying-spectrum noise."""
    rng = np.random.default_rng(0)  # the same centres and rotation for every draw
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    spectrum = (np.arange(1, dim + 1) ** (-decay / 2)).astype(np.float32)
    spectrum *= spread / np.sqrt((spectrum**2).sum())
    draws = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        rows = min(n, start + 100_000) - start
        noise = (draws.standard_normal((rows, dim)).astype(np.float32) * spectrum) @ rotation.T
        block = centres[draws.integers(0, clusters, rows)] + noise
        out[start : start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def p50_ms(search, queries: np.ndarray) -> float:
    for query in queries[:5]:  # warm-up
        search(query[None])
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query[None])
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def resident_mb(folder: Path, section: dict, queries: np.ndarray) -> dict[str, float]:
    """Memory of a fresh process that opens the index folder as `bgbias serve` does (faiss file
    and exact vectors memory-mapped) and answers the queries, in MB: VmRSS, and of it RssFile
    (mapped file pages: page cache the OS may drop) after opening and after the queries;
    against reading the same files into memory. The folder's files are first dropped from the
    page cache: a file just written is all cached, and the kernel maps cached neighbours of a
    faulted page too (fault-around), which would count pages no search read."""
    script = (
        "import json, sys, numpy as np, faiss\n"
        "from pathlib import Path\n"
        "from bgbias.search.faiss_store import FaissStore\n"
        "def mem():\n"
        "    f = dict(l.split(':') for l in open('/proc/self/status'))\n"
        "    return [int(f[k].split()[0]) / 1024 for k in ('VmRSS', 'RssFile')]\n"
        "base = mem()\n"
        "folder, section = Path(sys.argv[1]), json.loads(sys.argv[2])\n"
        "if sys.argv[3] == 'mmap':\n"
        "    store = FaissStore.open(folder, section)\n"
        "    search = lambda q: store.search({'full': q}, 10)\n"
        "else:\n"
        "    index = faiss.read_index(str(folder / 'index.faiss'))\n"
        "    exact = np.load(folder / 'vectors.npy') if section['rerank'] else None\n"
        "    search = lambda q: index.search(q, 10)\n"
        "opened = mem()\n"
        "for q in np.load(sys.argv[4]): search(q[None])\n"
        "after = mem()\n"
        "print(*(round(a - b, 1) for a, b in zip(opened + after, base + base)))\n"
    )
    np.save(folder / "queries.npy", queries)
    out = {}
    for mode in ("mmap", "read"):
        for path in folder.iterdir():
            descriptor = os.open(path, os.O_RDONLY)
            os.fsync(descriptor)  # only clean pages can be dropped
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(descriptor)
        answer = subprocess.run(
            [sys.executable, "-c", script, str(folder), json.dumps(section), mode]
            + [str(folder / "queries.npy")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        values = [float(v) for v in answer]
        out[f"{mode}_open_mb"], out[f"{mode}_after_queries_mb"] = values[0], values[2]
        if mode == "mmap":
            out["mmap_file_pages_after_queries_mb"] = values[3]
    return out


def bench_faiss(data, queries, kinds, rerank: int, tmp: Path) -> list[dict]:
    """One row per index type; two per ivfpq budget (codes only, re-ranked)."""
    rows = []
    for name, budget in kinds:
        kind = INDEX_TYPES.get(name)
        started = time.perf_counter()
        index, params = kind.build(data, budget, rerank if kind.reranks else 0)
        folder = tmp / f"{name}-{budget}"
        folder.mkdir()
        _write(index, folder / FAISS_FILES["full"])
        if kind.reranks and rerank:
            write_exact_vectors(folder / EXACT_FILES["full"], data)
        seconds = time.perf_counter() - started  # the files written included
        del index
        label = name if budget is None else f"{name} @ {budget / 2**20:.4g} MB"
        for factor in [rerank, 0] if kind.reranks and rerank else [0]:
            section = {"fields": ["full"], "type": name, "rerank": factor}
            store = FaissStore.open(folder, section)
            searched = store.indexes["full"]
            row = {
                "index": label + (f", rerank {factor}" if factor else ""),
                "build_s": round(seconds, 1),
                "bytes": (folder / FAISS_FILES["full"]).stat().st_size,
                "exact_vectors_bytes": (folder / EXACT_FILES["full"]).stat().st_size
                if factor
                else 0,
                "recall_at_10": 1.0 if kind.exact else round(recall_at_k(searched, data)[0], 4),
                "p50_ms": round(p50_ms(lambda q, s=store: s.search({"full": q}, K), queries), 3),
                "params": {k: v for k, v in params.items() if not isinstance(v, dict)},
            }
            row |= resident_mb(folder, section, queries[:100])
            print(json.dumps(row))
            rows.append(row)
            del store, searched
    # flat's file is its vectors plus a 45-byte header: with flat skipped, its payload stands in
    flat_bytes = next((r["bytes"] for r in rows if r["index"] == "flat"), data.nbytes)
    for row in rows:
        row["share_of_flat_bytes"] = round(row["bytes"] / flat_bytes, 4)
    return rows


def bench_milvus(data, queries, tmp: Path) -> dict:
    from bgbias.search.milvus_store import MilvusStore

    items = [{"id": str(i), "label": str(i % 100)} for i in range(len(data))]
    started = time.perf_counter()
    section = MilvusStore.write(
        tmp, {"full": data}, items, {"uri": str(tmp / "milvus.db"), "index_type": "flat"}
    )
    insert_s = time.perf_counter() - started
    milvus = MilvusStore.open(tmp, section)
    (tmp / "faiss").mkdir()
    faiss_section = FaissStore.write(tmp / "faiss", {"full": data}, items, {})
    faiss_store = FaissStore.open(tmp / "faiss", faiss_section)
    probe = data[np.random.default_rng(1).permutation(len(data))[:1000]]
    _, truth = faiss_store.search({"full": probe}, K)
    _, found = milvus.search({"full": probe}, K)
    same = float(np.mean([len(set(t) & set(f)) / K for t, f in zip(truth, found, strict=True)]))
    faiss_p50 = p50_ms(lambda q: faiss_store.search({"full": q}, K), queries)
    milvus_p50 = p50_ms(lambda q: milvus.search({"full": q}, K), queries)
    result = {
        "items": len(data),
        "milvus_lite_insert_s": round(insert_s, 1),
        "milvus_lite_recall_at_10_vs_faiss_flat": round(same, 4),
        "faiss_flat_p50_ms": round(faiss_p50, 3),
        "milvus_lite_p50_ms": round(milvus_p50, 3),
        "ratio": round(milvus_p50 / faiss_p50, 2),
    }
    MilvusStore.discard(section)
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--milvus-items", type=int, default=100_000, help="0: skip Milvus")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--decay", type=float, default=1.0)
    parser.add_argument(
        "--max-memory",
        type=float,
        nargs="+",
        default=[64.0],
        help="ivfpq budgets in MB (one build each; 1/16 of flat is always added)",
    )
    parser.add_argument("--rerank", type=int, default=10, help="ivfpq: candidates x k re-ranked")
    parser.add_argument("--hnsw-items", type=int, help="build hnsw on the first N items only")
    parser.add_argument("--queries", type=int, default=200, help="single queries timed")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["flat", "ivfpq", "hnsw"],
        help="index types to leave out",
    )
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    import faiss

    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} cpus"
    )
    started = time.perf_counter()
    data = clustered(args.items, args.dim, args.clusters, seed=1, decay=args.decay)
    queries = clustered(args.queries, args.dim, args.clusters, seed=2, decay=args.decay)
    print(f"{args.items} x {args.dim} embeddings in {time.perf_counter() - started:.1f} s")
    budgets = [int(mb * 2**20) for mb in args.max_memory] + [default_budget(*data.shape)]
    kinds = [("flat", None), *(("ivfpq", b) for b in budgets), ("hnsw", None)]
    kinds = [(name, b) for name, b in kinds if name not in args.skip]
    report = {"items": args.items, "dim": args.dim, "clusters": args.clusters}
    with tempfile.TemporaryDirectory(prefix="bgbias-scale-") as tmp:
        hnsw = args.hnsw_items and ("hnsw", None) in kinds
        report["faiss"] = bench_faiss(
            data, queries, [k for k in kinds if not hnsw or k[0] != "hnsw"], args.rerank, Path(tmp)
        )
        if hnsw:  # at a size that builds in reasonable time; flat again there, for its shares
            smaller = Path(tmp) / "hnsw-size"
            smaller.mkdir()
            rows = bench_faiss(
                data[: args.hnsw_items], queries, [("flat", None), ("hnsw", None)], 0, smaller
            )
            report["hnsw_at"] = {"items": args.hnsw_items, "faiss": rows}
        if args.milvus_items:
            small = Path(tmp) / "milvus"
            small.mkdir()
            report["milvus"] = bench_milvus(data[: args.milvus_items], queries, small)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
