"""Evaluation: embedding clean + 5 replaced-background passes, and SOP-scale metrics.

1. Embedding throughput at the backbone's size (BN-Inception, 227 px; untrained weights are as
   fast as trained ones): ``bgbias.evaluation.embed`` decodes and transforms each test image
   once and embeds every batch clean and with its backgrounds replaced 5 times (test bank),
   against the strongest plain loop: decode every image once into memory, then 6 embedding
   passes over it, with the same background draws, so the embeddings must agree.
2. Metrics at SOP scale (60,502 x 128 clustered embeddings, 11,316 classes):
   ``bgbias.metrics.retrieval_metrics`` against pytorch-metric-learning's AccuracyCalculator,
   in this process, imports and the calculator built before the clock (bench/metrics.py
   measures each in its own process, with peak memory).

    python bench/evaluation.py [--device cpu|cuda|auto] [--backbone bninception] [--images 48]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import background_folder, device_sync, pick_device  # noqa: E402
from loader import write_photos  # noqa: E402
from metrics import embeddings_for  # noqa: E402

from bgbias.augment import BackgroundReplacer  # noqa: E402
from bgbias.data.backgrounds import BackgroundBank  # noqa: E402
from bgbias.data.datasets import FolderDataset, IndexedDataset  # noqa: E402
from bgbias.data.transforms import PairedTransform  # noqa: E402
from bgbias.evaluation import embed  # noqa: E402
from bgbias.metrics import retrieval_metrics  # noqa: E402
from bgbias.models import build_model  # noqa: E402

REPEATS = 5  # replaced-background passes, as `bgbias evaluate`


@torch.no_grad()
def separate_passes(model, dataset, replacer, batch_size, device, workers) -> torch.Tensor:
    """The strongest plain loop: decode and transform every image once (one pass over the data
    loader, batches kept in memory), then embed the clean pass and one pass per repeat over
    those batches: (6, N, D)."""
    draws = [replacer.draw(len(dataset), torch.Generator().manual_seed(r)) for r in range(REPEATS)]
    loader = DataLoader(IndexedDataset(dataset), batch_size=batch_size, num_workers=workers)
    batches = [(images, masks, index) for images, masks, _, index in loader]
    passes = []
    for r in range(-1, REPEATS):
        out = []
        for images, masks, index in batches:
            images, masks = images.to(device), masks.to(device)
            if r >= 0:
                images = replacer(images, masks, draw=draws[r][index])
            out.append(model(images).float().cpu())
        passes.append(torch.cat(out))
    return torch.stack(passes)


def embedding_ratio(args, device) -> None:
    sync = device_sync(device)
    model = build_model(args.backbone, pretrained=False).to(device).eval()
    recipe = model.recipe
    folder, source = background_folder()
    bank = BackgroundBank.from_folder(folder / "test", recipe.resize)
    replacer = BackgroundReplacer(bank, recipe)
    with tempfile.TemporaryDirectory() as tmp:
        write_photos(Path(tmp), args.images, (500, 375))
        dataset = FolderDataset.open(tmp, "all", PairedTransform(recipe, train=False))
        print(
            f"\n{args.backbone} at {recipe.crop} px, {len(dataset)} photos 500x375 + masks, "
            f"batch {args.batch_size}, {args.workers} loader workers, backgrounds: {source}"
        )

        def ours():
            result = embed(
                model,
                dataset,
                replacer,
                repeats=REPEATS,
                batch_size=args.batch_size,
                device=device,
                num_workers=args.workers,
                progress=False,
            )
            return torch.stack([result.clean, *result.corrupted])

        def baseline():
            return separate_passes(model, dataset, replacer, args.batch_size, device, args.workers)

        times: dict[str, list[float]] = {"decode once, 6 passes": [], "bgbias embed": []}
        outputs = {}
        for _ in range(args.repeats):  # interleaved
            for name, fn in (("decode once, 6 passes", baseline), ("bgbias embed", ours)):
                sync()
                start = time.perf_counter()
                outputs[name] = fn()
                sync()
                times[name].append(time.perf_counter() - start)
    difference = (outputs["bgbias embed"] - outputs["decode once, 6 passes"]).abs().max().item()
    seconds = {name: statistics.median(values) for name, values in times.items()}
    for name, value in seconds.items():
        rate = len(dataset) * (1 + REPEATS) / value
        print(f"{name:18s} {value:7.2f} s  ({rate:6.1f} embeddings/s, median of {args.repeats})")
    print(f"max |embedding difference|: {difference:.1e}")
    ratio = seconds["decode once, 6 passes"] / seconds["bgbias embed"]
    print(f"ratio: embed clean+{REPEATS} {ratio:.2f}")


def metrics_ratio(device, repeats: int) -> None:
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    embeddings, labels = embeddings_for("sop")
    calculator = AccuracyCalculator(
        include=("mean_average_precision_at_r", "precision_at_1", "r_precision"),
        k="max_bin_count",
        device=device,
    )
    print(
        f"\nSOP-scale metrics: {len(labels):,} x {embeddings.shape[1]} embeddings, "
        f"device {device}, median of {repeats}"
    )
    times: dict[str, list[float]] = {"pml": [], "bgbias": []}
    for _ in range(repeats):  # interleaved
        start = time.perf_counter()
        theirs = calculator.get_accuracy(embeddings, labels)
        times["pml"].append(time.perf_counter() - start)
        start = time.perf_counter()
        ours = retrieval_metrics(embeddings, labels, device=device)
        times["bgbias"].append(time.perf_counter() - start)
    pml_seconds, bgbias_seconds = (statistics.median(times[k]) for k in ("pml", "bgbias"))
    difference = abs(ours["map_at_r"] - theirs["mean_average_precision_at_r"])
    print(
        f"PML AccuracyCalculator {pml_seconds:6.2f} s, bgbias retrieval_metrics "
        f"{bgbias_seconds:6.2f} s; MAP@R {ours['map_at_r']:.6f} (|difference| {difference:.1e})"
    )
    print(f"ratio: SOP metrics {pml_seconds / bgbias_seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--backbone", default="bninception")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-metrics", action="store_true")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device {device}; torch threads {torch.get_num_threads()}; a shared machine")
    embedding_ratio(args, device)
    if not args.skip_metrics:
        metrics_ratio(device, args.repeats)


if __name__ == "__main__":
    main()
