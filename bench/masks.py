"""Mask generation: rembg (one image at a time) vs `bgbias masks` on its two engines.

Each contender decodes every image, runs U2Net and writes a PNG mask; images/s include decode
and encode, model loading is outside the timed part, medians of ``--repeats`` runs after a
warm-up. The baseline is rembg's own API (`remove(..., only_mask=True)`) when rembg is
installed, else the same steps written as rembg does them (one onnxruntime session, one image at
a time). Parity: IoU at 128 and absolute differences of the 0-255 masks, each engine against
the baseline; quality: IoU against the hand masks when the images are the CUB set.

    python bench/masks.py [--model u2net] [--device cpu|cuda|auto] [--backend all|torch|onnxruntime]
                          [--batch-size 16] [--cub DIR | --images DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_BACKGROUNDS, pick_device  # noqa: E402

from bgbias.masks.generate import generate_masks, list_images, mask_file  # noqa: E402
from bgbias.masks.models import model_path  # noqa: E402
from bgbias.masks.predictors import U2NetProcessing, build_predictor  # noqa: E402
from bgbias.ort import import_onnxruntime  # noqa: E402

SHARED_CUB = SHARED_BACKGROUNDS.parent / "gt_masks" / "cub200"


def default_images(tmp: Path, cub: Path) -> tuple[Path, str]:
    folder = tmp / "images"
    folder.mkdir()
    if cub.is_dir():
        for path in sorted(cub.glob("*_image.jpeg")):
            shutil.copy(path, folder / path.name)
        return folder, f"{len(list(folder.iterdir()))} CUB-200-2011 test images ({cub})"
    rng = np.random.default_rng(0)
    for i in range(20):  # smooth "photos": a blurred blob on a gradient, not white noise
        small = rng.integers(0, 255, size=(6, 8, 3), dtype=np.uint8)
        photo = Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC)
        photo.save(folder / f"{i:02d}.jpg", quality=90)
    return folder, "20 synthetic 500x375 JPEGs"


def rembg_baseline(model: str, weights: Path, tmp: Path, device):
    """A function writing one mask per image with rembg's API, or rembg's steps when rembg is
    not installed; and its label."""
    import_onnxruntime()  # telemetry off before rembg imports onnxruntime
    try:
        from rembg import new_session, remove
    except ImportError:
        return _rembg_steps(weights, device), "rembg's steps on onnxruntime (rembg not installed)"
    home = tmp / "u2net_home"
    home.mkdir()
    os.symlink(weights, home / f"{model}.onnx")
    os.environ["U2NET_HOME"] = str(home)  # rembg uses our verified file, no download
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    session = new_session(model, providers=providers)
    running = session.inner_session.get_providers()[0]

    def run(images: Path, files: list[str], out: Path) -> None:
        for relative in files:
            with Image.open(images / relative) as image:
                mask = remove(image.convert("RGB"), session=session, only_mask=True)
            target = mask_file(out, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            mask.save(target)

    return run, f"rembg.remove(only_mask=True), one image at a time, {running}"


def _rembg_steps(weights: Path, device):
    ort = import_onnxruntime()
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(weights), providers=providers)
    steps = U2NetProcessing()

    def run(images: Path, files: list[str], out: Path) -> None:
        for relative in files:
            with Image.open(images / relative) as image:
                rgb = image.convert("RGB")
            x = steps.preprocess(rgb)[None]
            pred = session.run(None, {session.get_inputs()[0].name: x})[0][0, 0]
            target = mask_file(out, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            steps.postprocess(pred, rgb.size).save(target)

    return run


def timed(runs: dict, count: int, repeats: int, tmp: Path) -> dict[str, float]:
    """Median images/s of each ``run(out_dir)`` over ``repeats`` rounds after a warm-up round;
    rounds take the contenders in turn, so load from other work on a shared machine hits all."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run(tmp / name / f"run{i}")
            if i:
                rates[name].append(count / (time.perf_counter() - start))
    for name in runs:
        shutil.move(tmp / name / f"run{repeats}", tmp / name / "masks")
    return {name: statistics.median(values) for name, values in rates.items()}


def compare(first: Path, second: Path, files: list[str]) -> dict[str, float]:
    ious, max_diff, mean_diffs = [], 0, []
    for relative in files:
        a, b = (Image.open(mask_file(d, relative)).convert("L") for d in (first, second))
        a, b = np.asarray(a).astype(int), np.asarray(b.resize(a.size)).astype(int)
        union = np.logical_or(a >= 128, b >= 128).sum()
        ious.append(np.logical_and(a >= 128, b >= 128).sum() / union if union else 1.0)
        max_diff = max(max_diff, int(np.abs(a - b).max()))
        mean_diffs.append(np.abs(a - b).mean())
    return {
        "mean_iou": float(np.mean(ious)),
        "min_iou": float(np.min(ious)),
        "max_abs": max_diff,
        "mean_abs": float(np.mean(mean_diffs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="u2net", choices=["u2net", "u2netp"])
    parser.add_argument("--images", help="folder of images (default: the CUB images of --cub)")
    parser.add_argument("--cub", default=str(SHARED_CUB), help="hand-masked CUB images")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--backend", default="all", choices=["all", "torch", "onnxruntime"])
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = pick_device(args.device)
    weights = model_path(args.model)
    backends = ["onnxruntime", "torch"] if args.backend == "all" else [args.backend]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.images:
            images, source = Path(args.images), args.images
        else:
            images, source = default_images(tmp, Path(args.cub))
        files = list_images(images)
        print(f"{len(files)} images: {source}; model {args.model}; device {device}")
        print(f"machine: {os.cpu_count()} CPU cores (shared with other work: timings are noisy)")

        baseline, label = rembg_baseline(args.model, weights, tmp, device)
        runs = {"baseline": lambda out: baseline(images, files, out)}
        for backend in backends:
            predictor = build_predictor(args.model, backend, device, args.batch_size)
            print(
                f"bgbias {backend}: batch size {predictor.batch_size}, "
                f"device {getattr(predictor, 'device', device)}"
            )

            def run(out: Path, predictor=predictor) -> None:
                generate_masks(
                    images, out, predictor=predictor, workers=args.workers, progress=False
                )

            runs[backend] = run
        rates = timed(runs, len(files), args.repeats, tmp)

        print(f"\n| contender | images/s (median of {args.repeats}) |\n|---|---|")
        print(f"| baseline: {label} | {rates['baseline']:.2f} |")
        for backend in backends:
            print(f"| bgbias masks --backend {backend} | {rates[backend]:.2f} |")
        print(
            "\n| masks | mean IoU | min IoU | max abs diff | mean abs diff |\n|---|---|---|---|---|"
        )
        pairs = [(b, "baseline") for b in backends]
        if len(backends) == 2:
            pairs.append(("torch", "onnxruntime"))
        for first, second in pairs:
            c = compare(tmp / first / "masks", tmp / second / "masks", files)
            print(
                f"| {first} vs {second} | {c['mean_iou']:.5f} | {c['min_iou']:.5f} | "
                f"{c['max_abs']} | {c['mean_abs']:.4f} |"
            )
        hand = [
            f for f in files if (Path(args.cub) / f.replace("_image.jpeg", "_mask.png")).is_file()
        ]
        if hand and not args.images:
            truth = tmp / "truth"
            truth.mkdir()
            for f in hand:
                shutil.copy(
                    Path(args.cub) / f.replace("_image.jpeg", "_mask.png"), mask_file(truth, f)
                )
            for name in ["baseline", *backends]:
                c = compare(truth, tmp / name / "masks", hand)
                print(f"quality vs hand masks, {name}: mean IoU {c['mean_iou']:.4f}")
    for backend in backends:
        print(f"ratio: {backend} vs baseline {rates[backend] / rates['baseline']:.2f}")
    if len(backends) == 2:
        print(f"ratio: torch vs onnxruntime {rates['torch'] / rates['onnxruntime']:.2f}")


if __name__ == "__main__":
    main()
