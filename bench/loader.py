"""Training data loader: bgbias's data path vs the torchvision-style per-sample pipeline.

Both read the same JPEG photos and single-channel PNG masks (generated into a temporary folder at
real dataset sizes: CUB-200's are about 500x375) and make the same BN-Inception train crops from
the same (index, seed) draws, in a torch DataLoader with 1 and 2 worker processes:

* baseline, written the obvious way: ``Image.open()``, ``draft('RGB', ...)`` (the same
  reduced-size JPEG decoding bgbias uses), ``convert('RGB')`` (mask: ``convert('L')``),
  resize the shorter side to 256, RandomResizedCrop 227 (crop, then resize), flip, ToTensor,
  BGR x255, Normalize; the same on the mask;
* bgbias: ``FolderDataset`` + ``PairedTransform(bninception, train=True)``: JPEGs decoded at
  reduced resolution where they are at least twice the 256 side (DCT scaling), resize + crop
  as one resize of the crop's pixels, tensors normalised straight from uint8.

Also the eval transform (centre crop, in one process) and building a background bank from
photos (``BackgroundBank.from_folder`` against full decodes). Medians of repeats, baseline and
bgbias interleaved; data generation, dataset opening and worker start-up are outside the clock.

    python bench/loader.py [--sizes 500x375,1024x768] [--images 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, background_folder, pick_device, time_ms  # noqa: E402

from bgbias.data.backgrounds import BackgroundBank  # noqa: E402
from bgbias.data.datasets import FolderDataset  # noqa: E402
from bgbias.data.pixels import shorter_side_size  # noqa: E402
from bgbias.data.procedural import texture  # noqa: E402
from bgbias.data.transforms import RECIPES, PairedTransform, random_resized_crop_params  # noqa: E402
from bgbias.io import image_files  # noqa: E402

RECIPE = RECIPES.get("bninception")
MEAN = torch.tensor(RECIPE.normalization.mean).view(3, 1, 1)
STD = torch.tensor(RECIPE.normalization.std).view(3, 1, 1)
CLASSES = 30


def write_photos(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> None:
    """``count`` photo-like JPEGs (quality 90, sensor-like noise: CUB-sized files) with an
    object and its soft-edged single-channel PNG mask, in the folder-dataset layout."""
    rng = np.random.default_rng(seed)
    width, height = size
    classes = min(CLASSES, count)
    scenes = [texture(rng, height, width) for _ in range(24)]
    yy, xx = np.mgrid[:height, :width]
    for i in range(count):
        portrait = i % 4 == 3  # some portrait photos, as in CUB
        scene = np.roll(scenes[i % len(scenes)], rng.integers(width), axis=1)
        thing = scenes[(i * 7 + 3) % len(scenes)]
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        ry, rx = rng.uniform(0.2, 0.4) * height, rng.uniform(0.15, 0.35) * width
        inside = 1.0 - np.hypot((yy - cy) / ry, (xx - cx) / rx)
        alpha = np.clip(inside * min(ry, rx) / 2.0, 0.0, 1.0)  # a 2-pixel soft edge
        pixels = scene * (1 - alpha[..., None]) + thing * alpha[..., None]
        pixels = np.clip(pixels + rng.normal(0.0, 4.0, pixels.shape), 0, 255).astype(np.uint8)
        mask = (alpha * 255 + 0.5).astype(np.uint8)
        if portrait:
            pixels, mask = pixels.transpose(1, 0, 2), mask.T
        name = f"c{i % classes:02d}/{i:04d}"
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "masks" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(pixels)).save(
            root / "images" / f"{name}.jpg", quality=90
        )
        Image.fromarray(np.ascontiguousarray(mask)).save(root / "masks" / f"{name}.png")
    (root / "splits.json").write_text(json.dumps({"train": [f"c{c:02d}" for c in range(classes)]}))


def torchvision_pipeline(image: Image.Image, mask: Image.Image | None, train: bool, generator):
    """torchvision's transforms on PIL images, written out: Resize(256), RandomResizedCrop(227)
    + RandomHorizontalFlip (train) or CenterCrop(227), ToTensor, BGR x255, Normalize; the same
    geometry on the mask. Returns (image (3, 227, 227), mask (1, 227, 227) or None)."""

    def resize(picture: Image.Image, size: int) -> Image.Image:  # T.Resize(256)
        w, h = picture.size
        new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        return picture.resize(new, Image.BILINEAR)

    def to_tensor(picture: Image.Image) -> torch.Tensor:  # T.ToTensor
        array = np.array(picture, np.uint8, copy=True)
        tensor = torch.from_numpy(array).view(picture.height, picture.width, -1)
        return tensor.permute(2, 0, 1).contiguous().float().div(255)

    pictures = [resize(p, RECIPE.resize) for p in (image, mask) if p is not None]
    if train:
        top, left, h, w = random_resized_crop_params(
            pictures[0].height, pictures[0].width, RECIPE.scale, RECIPE.ratio, generator
        )
        box, size = (left, top, left + w, top + h), (RECIPE.crop, RECIPE.crop)
        pictures = [p.crop(box).resize(size, Image.BILINEAR) for p in pictures]
        if torch.rand(1, generator=generator).item() < 0.5:
            pictures = [p.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for p in pictures]
    else:
        left = int(round((pictures[0].width - RECIPE.crop) / 2.0))
        top = int(round((pictures[0].height - RECIPE.crop) / 2.0))
        pictures = [p.crop((left, top, left + RECIPE.crop, top + RECIPE.crop)) for p in pictures]
    x = to_tensor(pictures[0])[[2, 1, 0]] * 255  # Caffe BGR x255, then T.Normalize
    x = x.clone().sub_(MEAN).div_(STD)
    return x, (to_tensor(pictures[1]) if mask is not None else None)


class TorchvisionStyle(Dataset):
    """The per-sample pipeline as torchvision's transforms run it on PIL images."""

    def __init__(self, samples, train: bool = True):
        self.samples = samples
        self.train = train

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        index, seed = key
        sample = self.samples[index]
        image = Image.open(sample.image)
        # the same reduced-size JPEG decoding bgbias uses (DCT scaling down to the 256 side):
        # the fair baseline, since any PIL pipeline can ask for it with one call
        image.draft("RGB", shorter_side_size(*image.size, RECIPE.resize))
        image = image.convert("RGB")
        mask = Image.open(sample.mask).convert("L")
        generator = torch.Generator().manual_seed(seed)
        x, m = torchvision_pipeline(image, mask, self.train, generator)
        return x, m, sample.label


def loader_rates(datasets: dict, keys, workers: int, repeats: int, device) -> dict[str, list]:
    """Images/s per epoch of each dataset's DataLoader, epochs interleaved; one warm-up epoch."""
    loaders = {
        name: DataLoader(
            dataset,
            batch_size=32,
            sampler=keys,
            num_workers=workers,
            persistent_workers=True,
            pin_memory=device.type == "cuda",
        )
        for name, dataset in datasets.items()
    }
    rates: dict[str, list] = {name: [] for name in loaders}
    for epoch in range(repeats + 1):
        for name, loader in loaders.items():
            start = time.perf_counter()
            for x, m, _ in loader:
                x, m = x.to(device, non_blocking=True), m.to(device, non_blocking=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if epoch:
                rates[name].append(len(keys) / (time.perf_counter() - start))
    return rates


def equivalence(dataset, baseline, keys) -> str:
    """Largest and mean |difference| of images (0-255 units) and masks over the same draws."""
    image_diff, mask_diff = [], []
    for key in keys:
        x, m, _ = dataset[key]
        bx, bm, _ = baseline[key]
        image_diff.append((x - bx).abs())
        mask_diff.append((m - bm).abs() * 255)
    images, masks = torch.stack(image_diff), torch.stack(mask_diff)
    return (
        f"images max {images.max():.1f} mean {images.mean():.3f}, masks max {masks.max():.1f} "
        f"mean {masks.mean():.3f} (grey levels, {len(keys)} samples)"
    )


def resize_ratio(repeats: int) -> None:
    """One resize of a 500x375 photo to 341x256: PIL (RGB, L) against torch's uint8
    antialiased bilinear with 4, 3 and 1 channels (what bgbias.data.pixels chooses from)."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(texture(rng, 375, 500))
    grey = photo.convert("L")
    hwc = torch.from_numpy(np.array(photo.convert("RGBA")))
    tensors = {c: hwc[:, :, :c].contiguous().permute(2, 0, 1)[None] for c in (4, 3, 1)}
    size = (341, 256)

    def interpolate(channels: int):
        return torch.nn.functional.interpolate(
            tensors[channels], size=size[::-1], mode="bilinear", antialias=True
        )

    rounds = 50 * repeats
    timings = {
        "PIL RGB": time_ms(lambda: photo.resize(size, Image.BILINEAR), rounds),
        "PIL L": time_ms(lambda: grey.resize(size, Image.BILINEAR), rounds),
        **{f"torch uint8 {c}ch": time_ms(lambda c=c: interpolate(c), rounds) for c in (4, 3, 1)},
    }
    listed = ", ".join(f"{name} {ms:.2f} ms" for name, ms in timings.items())
    print(f"\nresize 500x375 -> 341x256, one process: {listed}")
    four = timings["torch uint8 4ch"]
    pil = timings["PIL RGB"] + timings["PIL L"]
    separate = timings["torch uint8 3ch"] + timings["torch uint8 1ch"]
    print(f"ratio: resize image + mask, PIL RGB + L vs torch 4ch {pil / four:.2f}")
    print(f"ratio: resize image + mask, torch 3ch + 1ch vs 4ch {separate / four:.2f}")


def bank_ratio(repeats: int) -> None:
    folder, source = background_folder()
    files = image_files(folder / "val")

    def full_decodes():  # what from_folder did before: full decode, resize, array
        def decode(path):
            image = Image.open(path).convert("RGB")
            size = shorter_side_size(*image.size, RECIPE.resize)
            return np.asarray(image.resize(size, Image.BILINEAR))

        with ThreadPoolExecutor(max_workers=8) as pool:
            arrays = list(pool.map(decode, files))
        return BackgroundBank.from_arrays(arrays, [p.name for p in files], str(folder))

    baseline_ms = time_ms(full_decodes, repeats, warmup=1)
    bgbias_ms = time_ms(lambda: BackgroundBank.from_folder(folder / "val", RECIPE.resize), repeats)
    old, new = full_decodes(), BackgroundBank.from_folder(folder / "val", RECIPE.resize)
    diff = (old.pixels.float() - new.pixels.float()).abs()
    print(
        f"\nbackground bank, {len(files)} {source} at short side {RECIPE.resize}: full decode "
        f"{baseline_ms:.0f} ms, bgbias {bgbias_ms:.0f} ms; pixels differ by mean "
        f"{diff.mean():.2f}, max {diff.max():.0f} grey levels"
    )
    print(f"ratio: bank {baseline_ms / bgbias_ms:.2f}")


def compare_size(size_text: str, images: int, workers: list[int], repeats: int, device) -> None:
    size = tuple(int(v) for v in size_text.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_photos(root, images, size)
        dataset = FolderDataset.open(root, "train", PairedTransform(RECIPE, train=True))
        baseline = TorchvisionStyle(dataset.samples)
        draws = np.random.default_rng(1)
        order = draws.permutation(len(dataset)).tolist()
        seeds = draws.integers(2**62, size=len(dataset)).tolist()
        keys = list(zip(order, seeds, strict=True))
        kb = np.mean([s.image.stat().st_size for s in dataset.samples]) / 1024
        mask_kb = np.mean([s.mask.stat().st_size for s in dataset.samples]) / 1024
        print(
            f"\n{len(dataset)} photos {size_text} (JPEG, mean {kb:.0f} KB) + PNG masks "
            f"(mean {mask_kb:.0f} KB){reference_sizes()}"
        )
        print(f"same draws, train: {equivalence(dataset, baseline, keys[:48])}")
        for count in workers:
            rates = loader_rates(
                {"baseline": baseline, "bgbias": dataset}, keys, count, repeats, device
            )
            base, ours = (statistics.median(rates[k]) for k in ("baseline", "bgbias"))
            print(
                f"{count} worker(s): baseline {base:7.1f} images/s, bgbias {ours:7.1f} images/s"
                f"  (epochs: {', '.join(f'{r:.0f}' for r in rates['bgbias'])})"
            )
            print(f"ratio: train loader {size_text} workers={count} {ours / base:.2f}")
        evaluation = dataset.with_transform(PairedTransform(RECIPE, train=False))
        eval_baseline = TorchvisionStyle(dataset.samples, train=False)
        few = keys[:64]
        base_ms = time_ms(lambda: [eval_baseline[k] for k in few], repeats, warmup=1)
        ours_ms = time_ms(lambda: [evaluation[k] for k in few], repeats, warmup=1)
        print(
            f"eval transform (centre crop, one process): baseline {base_ms / len(few):.2f} "
            f"ms/image, bgbias {ours_ms / len(few):.2f}; "
            f"same images: {equivalence(evaluation, eval_baseline, few[:16])}"
        )
        print(f"ratio: eval transform {size_text} {base_ms / ours_ms:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (batches go there)")
    parser.add_argument("--sizes", default="500x375,1024x768", help="photo sizes, WxH,...")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # per-sample work is single-threaded (as in DataLoader workers)
    print(
        f"BN-Inception train transform (256 -> RandomResizedCrop 227), batch 32, device {device}, "
        f"{args.repeats} timed epochs per loader (medians); a shared machine"
    )
    workers = [int(w) for w in args.workers.split(",")]
    for size_text in args.sizes.split(","):
        compare_size(size_text, args.images, workers, args.repeats, device)
    resize_ratio(args.repeats)
    bank_ratio(args.repeats)


def reference_sizes() -> str:
    cub = sorted((SHARED_DATA / "gt_masks" / "cub200").glob("*_image.jpeg"))
    if not cub:
        return ""
    kb = np.mean([p.stat().st_size for p in cub]) / 1024
    return f"; the {len(cub)} CUB photos in ../shared average {kb:.0f} KB"


if __name__ == "__main__":
    main()
