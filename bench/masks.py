"""Mask generation: rembg's API (one image at a time) vs `bgbias masks`, same model, same images.

Both decode each image, run U2Net and write a PNG mask. Also compares the masks (IoU after
binarising at 128; bgbias must match rembg's only_mask output). Needs `pip install rembg` and
the model file (`bgbias models fetch u2net`).

    python bench/masks.py [--model u2net] [--images DIR] [--device cuda --batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_BACKGROUNDS  # noqa: E402

from bgbias.masks.generate import generate_masks, list_images  # noqa: E402
from bgbias.masks.models import model_path  # noqa: E402

SHARED_CUB = SHARED_BACKGROUNDS.parent / "gt_masks" / "cub200"


def default_images(tmp: Path) -> tuple[Path, str]:
    folder = tmp / "images"
    folder.mkdir()
    if SHARED_CUB.is_dir():
        for path in sorted(SHARED_CUB.glob("*_image.jpeg")):
            shutil.copy(path, folder / path.name)
        return folder, "20 CUB-200-2011 test images (../shared)"
    rng = np.random.default_rng(0)
    for i in range(20):
        array = rng.integers(0, 255, size=(375, 500, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"{i:02d}.jpg", quality=90)
    return folder, "20 synthetic 500x375 JPEGs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="u2net", choices=["u2net", "u2netp"])
    parser.add_argument("--images", help="folder of images (default: the shared CUB images)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()

    from rembg import new_session, remove

    weights = model_path(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.images:
            images, source = Path(args.images), args.images
        else:
            images, source = default_images(tmp)
        files = list_images(images)
        home = tmp / "u2net_home"
        home.mkdir()
        os.symlink(weights, home / f"{args.model}.onnx")
        os.environ["U2NET_HOME"] = str(home)  # rembg uses our verified file, no download
        session = new_session(args.model)
        print(f"{len(files)} images: {source}; model {args.model}; device {args.device}")

        remove(
            Image.open(images / files[0]).convert("RGB"), session=session, only_mask=True
        )  # warm up
        start = time.perf_counter()
        for relative in files:
            mask = remove(
                Image.open(images / relative).convert("RGB"), session=session, only_mask=True
            )
            target = tmp / "rembg" / Path(relative).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            mask.save(target)
        rembg_rate = len(files) / (time.perf_counter() - start)

        generate_masks(
            images,
            tmp / "warm",
            args.model,
            device=args.device,
            batch_size=args.batch_size,
            progress=False,
        )  # warm up (sessions, caches)
        report = generate_masks(
            images,
            tmp / "bgbias",
            args.model,
            device=args.device,
            batch_size=args.batch_size,
            progress=False,
        )
        bgbias_rate = report.images_per_second

        ious, identical = [], 0
        for relative in files:
            a = np.asarray(Image.open(tmp / "rembg" / Path(relative).with_suffix(".png")))
            b = np.asarray(Image.open(tmp / "bgbias" / Path(relative).with_suffix(".png")))
            identical += int(np.array_equal(a, b))
            union = np.logical_or(a >= 128, b >= 128).sum()
            ious.append(np.logical_and(a >= 128, b >= 128).sum() / union if union else 1.0)
    print(
        f"masks identical to rembg's: {identical}/{len(files)}; IoU vs rembg: "
        f"min {min(ious):.4f}, mean {np.mean(ious):.4f}"
    )
    print(f"rembg (remove(..., only_mask=True), one image at a time): {rembg_rate:6.2f} images/s")
    print(f"bgbias masks:                                           {bgbias_rate:6.2f} images/s")
    print(f"ratio: {bgbias_rate / rembg_rate:.2f}")


if __name__ == "__main__":
    main()
