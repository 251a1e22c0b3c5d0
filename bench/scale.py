"""Catalogue scale: build time, bytes, recall@10 and single-query p50 of the faiss index types on
seeded, clustered embeddings; resident memory of a served (memory-mapped) index; Milvus Lite
against faiss flat through the same store interface the server uses.

    python bench/scale.py [--items 1000000] [--milvus-items 100000] [--max-memory 64 80]

The embeddings: ``--clusters`` unit centres in ``--dim`` dimensions, each item a centre plus
noise whose variance decays as 1/i over a random rotation (``--decay``; real embeddings' spectra
decay too), renormalised; queries are fresh draws of the same law. Recall@10: share of the
exact top-10 an index returns, over 1,000 of the indexed vectors as queries (what `bgbias
index` reports). p50: median over single queries, k = 10, in this process.

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
from bgbias.search.faiss_store import INDEX_TYPES, FaissStore, recall_at_k  # noqa: E402

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


def resident_mb(folder: Path, queries: np.ndarray) -> dict[str, float]:
    """RSS of a fresh process that opens the index folder as `bgbias serve` does (memory-mapped)
    and answers the queries; against reading the same file into memory."""
    script = (
        "import sys, numpy as np, faiss\n"
        "from pathlib import Path\n"
        "from bgbias.search.faiss_store import _read\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS'): return int(line.split()[1]) / 1024\n"
        "base = rss()\n"
        "path = Path(sys.argv[1]) / 'index.faiss'\n"
        "index = _read(path) if sys.argv[2] == 'mmap' else faiss.read_index(str(path))\n"
        "opened = rss()\n"
        "queries = np.load(sys.argv[3])\n"
        "for q in queries: index.search(q[None], 10)\n"
        "print(opened - base, rss() - base)\n"
    )
    np.save(folder / "queries.npy", queries)
    out = {}
    for mode in ("mmap", "read"):
        answer = subprocess.run(
            [sys.executable, "-c", script, str(folder), mode, str(folder / "queries.npy")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        out[f"{mode}_open_mb"], out[f"{mode}_after_queries_mb"] = (
            round(float(v), 1) for v in answer
        )
    return out


def bench_faiss(data, queries, kinds, tmp: Path) -> list[dict]:
    rows = []
    for name, budget in kinds:
        kind = INDEX_TYPES.get(name)
        started = time.perf_counter()
        index, params = kind.build(data, budget)
        seconds = time.perf_counter() - started
        folder = tmp / f"{name}-{budget}"
        folder.mkdir()
        items = [{"id": str(i)} for i in range(len(data))]
        section = {"fields": ["full"], "type": name}
        import faiss

        faiss.write_index(index, str(folder / "index.faiss"))
        nbytes = (folder / "index.faiss").stat().st_size
        recall = 1.0 if kind.exact else recall_at_k(index, data)[0]
        store = FaissStore.open(folder, section)
        del index, items
        row = {
            "index": name if budget is None else f"{name} @ {budget / 2**20:.4g} MB",
            "build_s": round(seconds, 1),
            "bytes": nbytes,
            "recall_at_10": round(recall, 4),
            "p50_ms": round(p50_ms(lambda q, s=store: s.search({"full": q}, K), queries), 3),
            "params": {k: v for k, v in params.items() if not isinstance(v, dict)},
        }
        row |= resident_mb(folder, queries[:100])
        print(json.dumps(row))
        rows.append(row)
    flat = next(r for r in rows if r["index"] == "flat")
    for row in rows:
        row["share_of_flat_bytes"] = round(row["bytes"] / flat["bytes"], 4)
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
        default=[64.0, 80.0],
        help="ivfpq budgets in MB (one build each; 1/16 of flat is always added)",
    )
    parser.add_argument("--queries", type=int, default=200, help="single queries timed")
    parser.add_argument("--skip", nargs="*", default=[], help="index types to leave out")
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
        report["faiss"] = bench_faiss(data, queries, kinds, Path(tmp))
        if args.milvus_items:
            small = Path(tmp) / "milvus"
            small.mkdir()
            report["milvus"] = bench_milvus(data[: args.milvus_items], queries, small)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
