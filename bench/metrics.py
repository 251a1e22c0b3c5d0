"""Retrieval metrics at scale: pytorch-metric-learning's AccuracyCalculator vs bgbias.

Synthetic clustered embeddings shaped like the paper's test sets (SOP: 60,502 x 128, 11,316
classes); each measurement runs in a fresh process so its peak RSS is its own. Same three
metrics (MAP@R, P@1, R-Precision), k="max_bin_count", the query set as its own reference.
Imports (torch, faiss, PML, bgbias) and building PML's AccuracyCalculator happen before the
clock starts; the clock covers the metric computation only, and each time is the median of
``--repeats`` computations in that process. ``--device cuda``: PML's
AccuracyCalculator on the GPU (faiss on the GPU if this faiss has GPU support, else on the
CPU, as PML does) and bgbias's search with torch on the GPU.

    python bench/metrics.py [--only sop] [--device cpu|cuda|auto] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device  # noqa: E402

SHAPES = {  # name: (items, classes, min per class, max per class)
    "sop": (60_502, 11_316, 2, 12),
    "cars": (8_131, 98, 60, 110),
    "cub": (5_924, 100, 41, 60),
}


def embeddings_for(name: str):
    import torch

    n, classes, low, high = SHAPES[name]
    rng = np.random.default_rng(0)
    sizes = rng.integers(low, high + 1, size=classes)
    sizes = np.clip(np.round(sizes * n / sizes.sum()), low, high).astype(int)
    while (missing := n - int(sizes.sum())) != 0:  # +-1 on random classes, staying in bounds
        step = 1 if missing > 0 else -1
        room = np.flatnonzero(sizes + step <= high if step > 0 else sizes + step >= low)
        sizes[rng.choice(room, size=min(abs(missing), len(room)), replace=False)] += step
    labels = np.repeat(np.arange(classes), sizes)
    centres = rng.normal(size=(classes, 128)).astype(np.float32)
    x = centres[labels] + 1.2 * rng.normal(size=(len(labels), 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return torch.from_numpy(x), torch.from_numpy(labels)


def worker(name: str, implementation: str, device_name: str, repeats: str) -> None:
    import faiss  # noqa: F401  (both use it; imported before the clock)
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    from bgbias.metrics import retrieval_metrics

    device = torch.device(device_name)
    embeddings, labels = embeddings_for(name)
    calculator = AccuracyCalculator(
        include=("mean_average_precision_at_r", "precision_at_1", "r_precision"),
        k="max_bin_count",
        device=device,
    )

    def compute() -> dict[str, float]:
        if implementation == "bgbias":
            return retrieval_metrics(embeddings, labels, device=device)
        raw = calculator.get_accuracy(embeddings, labels)
        return {
            "map_at_r": raw["mean_average_precision_at_r"],
            "precision_at_1": raw["precision_at_1"],
            "r_precision": raw["r_precision"],
        }

    times = []
    for _ in range(int(repeats)):
        start = time.perf_counter()
        values = compute()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB on Linux
    print(json.dumps({"seconds": statistics.median(times), "peak_mb": peak, "values": values}))


def measure(name: str, implementation: str, device: str, repeats: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", name, implementation, device, str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(SHAPES))
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    device = str(pick_device(args.device))
    names = [args.only] if args.only else ["cub", "cars", "sop"]
    print(
        f"device {device}; a shared machine; each row its own process, "
        f"median of {args.repeats} runs"
    )
    header = f"{'shape':6s} {'impl':8s} {'seconds':>9s} {'peak RSS MB':>12s}"
    print(f"{header}  MAP@R      P@1        R-Prec")
    ratios = {}
    for name in names:
        n, classes, _, _ = SHAPES[name]
        print(f"{name}: {n:,} x 128 embeddings, {classes:,} classes")
        rows = {impl: measure(name, impl, device, args.repeats) for impl in ("pml", "bgbias")}
        for impl, row in rows.items():
            v = row["values"]
            print(
                f"{name:6s} {impl:8s} {row['seconds']:9.2f} {row['peak_mb']:12.0f}  "
                f"{v['map_at_r']:.8f} {v['precision_at_1']:.8f} {v['r_precision']:.8f}"
            )
        identical = max(
            abs(rows["pml"]["values"][k] - rows["bgbias"]["values"][k])
            for k in rows["pml"]["values"]
        )
        ratios[name] = rows["pml"]["seconds"] / rows["bgbias"]["seconds"]
        print(
            f"{name:6s} max |difference| {identical:.1e}; speed ratio (PML / bgbias) "
            f"{ratios[name]:.2f}; peak RSS bgbias {rows['bgbias']['peak_mb'] / 1024:.2f} GB"
        )
    print("ratio: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
