"""`bgbias audit` throughput against the model's bare embedding throughput (the limit).

1,000 generated 224 px images with exact masks (the generated benchmark's test split, made
outside the timed part), EfficientNet-Lite0 with its real ImageNet weights. Bare: the model
embedding the same images, already decoded and normalised, in batches (median of passes taken
before and after the audit, as load drifts on a shared machine). Audit:
the whole ``run_audit`` (decode, inpainting, every condition with 5 repeats, metrics, figures,
report), counted as the images it embeds per second.

    python bench/audit.py [--device cpu|cuda|auto] [--images 1000] [--repeats 5]
                          [--bare-passes 3] [--audit-runs 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_sync, pick_device  # noqa: E402

from bgbias.adapters import load_embedder  # noqa: E402
from bgbias.auditing import AuditConfig, run_audit  # noqa: E402
from bgbias.auditing.images import decode, find_images  # noqa: E402
from bgbias.data.generate import BenchmarkConfig, generate_benchmark  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bare-passes", type=int, default=3)
    parser.add_argument("--audit-runs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--work", help="folder for the generated images (default: a temp dir)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    sync = device_sync(device)

    work = Path(args.work or tempfile.mkdtemp(prefix="bgbias-bench-audit-"))
    per_class = 20
    config = BenchmarkConfig(
        image_size=224,
        train_classes=1,
        val_classes=1,
        test_classes=-(-args.images // per_class),
        images_per_class=per_class,
    )
    started = time.perf_counter()
    generate_benchmark(work / "data", config, overwrite=True)
    print(
        f"generated {config.test_classes * per_class} test images at 224 px in "
        f"{time.perf_counter() - started:.0f} s ({work / 'data'})"
    )

    # real ImageNet weights, loaded untimed
    embedder = load_embedder("efficientnet_lite0").to(device)
    recipe = embedder.recipe
    images = find_images(work / "data", split="test")
    pixels = decode(images, [(recipe.resize, recipe.crop)])[(recipe.resize, recipe.crop)]
    normalised = recipe.normalization(pixels.images.float().div(255.0)).to(device)
    print(
        f"{len(images)} images, device {device}, {torch.get_num_threads()} torch threads, "
        f"batch {args.batch_size}"
    )

    def bare() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(normalised), args.batch_size):
                embedder(normalised[i : i + args.batch_size])
        sync()
        return len(normalised) / (time.perf_counter() - start)

    bare()  # warm-up (allocator, kernels)
    bare_rates = [bare() for _ in range(args.bare_passes)]

    audit_rates, seconds = [], []
    for run in range(args.audit_runs):
        start = time.perf_counter()
        audit = run_audit(
            AuditConfig(
                models=[embedder],
                images=work / "data",
                split="test",
                out=work / f"audit-{run}",
                repeats=args.repeats,
                batch_size=args.batch_size,
                device=str(device),
                progress=False,
            )
        )
        elapsed = time.perf_counter() - start
        seconds.append(elapsed)
        audit_rates.append(audit["embedded_images"] / elapsed)
    audit_rate = statistics.median(audit_rates)
    # bare passes before AND after the audit: a shared machine's load drifts over minutes
    bare_rates += [bare() for _ in range(args.bare_passes)]
    bare_rate = statistics.median(bare_rates)
    print(
        f"bare embedding: {bare_rate:.1f} images/s (median of "
        f"{', '.join(f'{r:.1f}' for r in bare_rates)}; half before, half after the audit)"
    )
    per_image = audit["embedded_images"] / len(images)
    print(
        f"audit: {len(images)} images x {per_image:.0f} embedded variants "
        f"({args.repeats} repeats) in {statistics.median(seconds):.1f} s = "
        f"{audit_rate:.1f} embedded images/s, {len(images) / statistics.median(seconds):.2f} "
        f"audited images/s"
    )
    print(f"ratio: {audit_rate / bare_rate:.3f} (audit / bare embedding throughput; goal >= 0.8)")
    print("(timings on a shared machine)")


if __name__ == "__main__":
    main()
