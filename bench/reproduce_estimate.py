"""What reproducing the paper costs per stage: FLOPs counted, CPU time measured, GPU time
estimated (no GPU was at hand when this was written; an estimate, and it says so).

Counts the FLOPs of the paper's model (BN-Inception + 128-d head, 227 px) with
``torch.utils.flop_counter`` for one training step (batch 32, forward + backward), one
evaluation forward and one SmoothGrad attention image (25 noisy copies, forward + backward to
the input, frozen weights); measures the same three on ``--device`` (wall time, medians of
repeats; on a GPU its effective TFLOP/s are what ``--gpu-tflops`` asks for) and the CPU time one
data-loader worker (one torch thread) spends to decode, resize and crop a training image and its
mask, bgbias's data path (``FolderDataset``'s decode + ``PairedTransform``) against the plain
PIL pipeline (bench/loader.py's baseline); then estimates each stage of the reproduction on one
GPU as max(compute at an assumed effective rate, decoding by the data-loader workers).

    python bench/reproduce_estimate.py [--device cpu|cuda|auto] [--gpu-tflops 10,40]
                                       [--workers 4] [--epochs 50,150]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_BACKGROUNDS, device_sync, pick_device, time_ms  # noqa: E402
from loader import torchvision_pipeline  # noqa: E402

from bgbias.config import DataConfig  # noqa: E402
from bgbias.data.transforms import PairedTransform  # noqa: E402
from bgbias.decoding import decode_image, load_mask  # noqa: E402
from bgbias.models import build_model  # noqa: E402

# the paper's splits and training setup; val sizes from the class split (val images ~ class share)
DATASETS = {  # name: (val images, test images)
    "cars196": (1_970, 8_131),
    "cub200": (1_470, 5_924),
    "sop": (14_900, 60_502),
}
STEPS_PER_EPOCH, BATCH, REPEATS, SAMPLES = 100, 32, 5, 25
RUNS_PER_DATASET = 15  # 5 losses x {base, bgaugment, base_corrupted}


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto: where the model runs")
    parser.add_argument("--gpu-tflops", default="10,40", help="assumed effective GPU TFLOP/s")
    parser.add_argument(
        "--workers", type=int, default=DataConfig().num_workers, help="data-loader processes"
    )
    parser.add_argument("--epochs", default="50,150", help="epochs a run takes (early stopping)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    low_tflops, high_tflops = (float(x) for x in args.gpu_tflops.split(","))
    few_epochs, many_epochs = (int(x) for x in args.epochs.split(","))
    device = pick_device(args.device)
    sync = device_sync(device)
    torch.manual_seed(0)

    model = build_model("bninception", pretrained=False, embedding_size=128).to(device).train()
    crop = model.recipe.crop
    batch = torch.randn(BATCH, 3, crop, crop, device=device)

    def train_step():
        model.zero_grad(set_to_none=True)
        model(batch).sum().backward()

    frozen = build_model("bninception", pretrained=False, embedding_size=128).to(device).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    one = torch.randn(1, 3, crop, crop, device=device)

    def forward():  # a batch, as evaluation embeds: per image below
        with torch.no_grad():
            frozen(batch)

    def attention_image():
        copies = (one + 0.1 * torch.randn(SAMPLES, 3, crop, crop, device=device)).requires_grad_()
        frozen(copies).sum().backward()

    counted = {
        "train step": flops(train_step),
        "forward": flops(forward) / BATCH,
        "attention": flops(attention_image),
    }
    measured_ms = {
        "train step": time_ms(train_step, args.repeats, warmup=1, sync=sync),
        "forward": time_ms(forward, args.repeats, warmup=1, sync=sync) / BATCH,
        "attention": time_ms(attention_image, args.repeats, warmup=1, sync=sync),
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"model on {device}; a shared machine"
    )
    print("per training step (batch 32), per image forward, per image attention (25 copies):")
    for name in counted:
        rate = counted[name] / (measured_ms[name] / 1000) / 1e9
        print(
            f"{name:11} {counted[name] / 1e9:8.1f} GFLOP  {device.type} "
            f"{measured_ms[name]:9.1f} ms  ({rate:.0f} GFLOP/s)"
        )
    decode_ms, plain_ms = _decode_ms(model.recipe, args.repeats)
    decode_rate = args.workers * 1000 / decode_ms  # images/s with the workers in parallel
    print(
        f"reading a 500x375 JPEG and its mask: {decode_ms:.1f} ms CPU time (one worker; plain "
        f"PIL pipeline {plain_ms:.1f} ms); {decode_rate:.0f} images/s with {args.workers} workers"
    )
    print(f"ratio: data path per image, plain PIL pipeline / bgbias {plain_ms / decode_ms:.2f}")

    def gpu_s(flop: float, images: int, tflops: float) -> float:
        return max(flop / (tflops * 1e12), images / decode_rate)

    print(
        f"\nestimated GPU time, effective {low_tflops:g}-{high_tflops:g} TFLOP/s "
        f"(fastest-slowest); training {few_epochs}-{many_epochs} epochs per run:"
    )
    header = f"{'dataset':8} {'epoch':>13} {'train run':>15} {'evaluate':>13} {'attention':>13}"
    print(header)
    totals = np.zeros(2)
    for name, (val_images, test_images) in DATASETS.items():
        epoch = [
            gpu_s(counted["train step"] * STEPS_PER_EPOCH, STEPS_PER_EPOCH * BATCH, t)
            + gpu_s(counted["forward"] * 2 * val_images, val_images, t)  # clean + corrupted
            for t in (high_tflops, low_tflops)
        ]
        run = [epoch[0] * few_epochs, epoch[1] * many_epochs]
        evaluate = [
            gpu_s(counted["forward"] * (1 + REPEATS) * test_images, test_images, t)
            for t in (high_tflops, low_tflops)
        ]
        attention = [
            gpu_s(counted["attention"] * test_images, test_images, t)
            for t in (high_tflops, low_tflops)
        ]
        per_cell = np.array(run) + np.array(evaluate) + np.array(attention)
        totals += RUNS_PER_DATASET * per_cell
        print(
            f"{name:8} {_span(epoch, 's'):>13} {_span(np.array(run) / 60, 'min'):>15} "
            f"{_span(np.array(evaluate) / 60, 'min'):>13} "
            f"{_span(np.array(attention) / 60, 'min'):>13}"
        )
    print(f"all 45 cells on one GPU: {totals[0] / 3600:.0f}-{totals[1] / 3600:.0f} GPU hours")


def _span(values, unit: str) -> str:
    return f"{values[0]:.1f}-{values[1]:.1f} {unit}"


def _decode_ms(recipe, repeats: int) -> tuple[float, float]:
    """CPU ms (medians) to read one training image (a natural 500x375 JPEG, CUB's typical size:
    one of the paper's photos, scaled, where ../shared has them; else a smooth synthetic one)
    and its PNG mask, resize, crop and flip them: bgbias's data path, and the plain PIL
    pipeline (bench/loader.py's baseline) on the same files, interleaved."""
    photos = sorted((SHARED_BACKGROUNDS / "val").glob("*.jpeg"))
    if photos:
        source = Image.open(photos[0]).convert("RGB").resize((500, 375), Image.BILINEAR)
    else:
        y, x = np.mgrid[0:375, 0:500]
        smooth = np.stack([x * 0.5, y * 0.6, (x + y) * 0.3], axis=-1) % 255
        source = Image.fromarray(smooth.astype(np.uint8))
    mask = np.zeros((375, 500), dtype=np.uint8)
    mask[80:300, 100:400] = 255
    transform = PairedTransform(recipe, train=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    generator = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        image_path, mask_path = Path(tmp) / "image.jpg", Path(tmp) / "mask.png"
        source.save(image_path, "JPEG", quality=90)
        Image.fromarray(mask).save(mask_path)

        def bgbias():  # FolderDataset's per-sample work
            image = decode_image(image_path, transform.source_side)
            transform(image, load_mask(mask_path, image.size, image.orientation), generator)

        def plain():
            image = Image.open(image_path).convert("RGB")
            torchvision_pipeline(image, Image.open(mask_path).convert("L"), True, generator)

        times: dict = {bgbias: [], plain: []}
        for fn in times:
            fn()  # warm-up
        for _ in range(repeats * 20):
            for fn, values in times.items():
                start = time.process_time()
                fn()
                values.append((time.process_time() - start) * 1000)
    torch.set_num_threads(threads)
    return float(np.median(times[bgbias])), float(np.median(times[plain]))


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"({time.perf_counter() - started:.0f} s)")
