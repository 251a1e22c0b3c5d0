"""BGAugment compositing, one batch of 32 at 227 px: bgbias against two baselines.

* reference (Kobs & Hotho 2022, BGAugment): inside the training step, for each image, open a random
  background photo with PIL and apply the torchvision-style train transform (resize shorter
  side 256, RandomResizedCrop 227, flip, to tensor, BGR, x255 - mean; bench/loader.py's
  baseline pipeline), stack, composite;
* pre-decoded: the strongest simple alternative: backgrounds decoded once (shorter side 256)
  into uint8 tensors on the device; per step and image, a random crop box, ``F.interpolate``
  to 227, flip, normalise; composite;
* bgbias: ``BackgroundReplacer`` over a ``BackgroundBank`` (one uint8 atlas; crops rendered as
  one ``grid_sample`` on a GPU, or per image on a CPU above ``PER_IMAGE_ABOVE`` px).

Building the bank (decoding the photos) is timed apart from the per-batch times. Also times
both render paths of ``BackgroundReplacer`` at several crop sizes (the CPU crossover that
``bgbias.augment.PER_IMAGE_ABOVE`` is set from).

    python bench/bgaugment.py [--device cpu|cuda|auto] [--repeats 15]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import background_folder, device_sync, pick_device, time_ms  # noqa: E402
from loader import torchvision_pipeline  # noqa: E402

from bgbias.augment import PER_IMAGE_ABOVE, BackgroundReplacer, composite  # noqa: E402
from bgbias.data.backgrounds import BackgroundBank  # noqa: E402
from bgbias.data.pixels import shorter_side_size  # noqa: E402
from bgbias.data.transforms import RECIPES, random_resized_crop_params  # noqa: E402
from bgbias.io import image_files  # noqa: E402


def predecode(files: list[Path], short_side: int, device: torch.device) -> list[torch.Tensor]:
    """Each photo decoded and resized once (PIL), as uint8 (3, h, w) on ``device``."""
    out = []
    for path in files:
        image = Image.open(path).convert("RGB")
        size = shorter_side_size(*image.size, short_side)
        array = np.array(image.resize(size, Image.BILINEAR))
        out.append(torch.from_numpy(array).permute(2, 0, 1).contiguous().to(device))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    recipe = RECIPES.get("bninception")
    folder, source = background_folder()
    files = image_files(folder / "val")
    device = pick_device(args.device)
    sync = device_sync(device)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, recipe.crop, recipe.crop, device=device)
    masks = torch.rand(args.batch, 1, recipe.crop, recipe.crop, device=device)
    print(
        f"backgrounds: {len(files)} from {source}; batch {args.batch} at {recipe.crop} px; "
        f"device {device}; torch threads {torch.get_num_threads()}; a shared machine"
    )

    rng = random.Random(0)
    reference_draws = torch.Generator().manual_seed(0)

    def reference() -> torch.Tensor:
        backgrounds = [
            torchvision_pipeline(
                Image.open(rng.choice(files)).convert("RGB"), None, True, reference_draws
            )[0]
            for _ in range(args.batch)
        ]
        return composite(images, masks, torch.stack(backgrounds).to(device))

    build_repeats = max(1, args.repeats // 5)
    predecoded_build_ms = time_ms(
        lambda: predecode(files, recipe.resize, device), build_repeats, warmup=0, sync=sync
    )
    decoded = predecode(files, recipe.resize, device)
    mean = torch.tensor(recipe.normalization.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(recipe.normalization.std, device=device).view(1, 3, 1, 1)
    draws = torch.Generator().manual_seed(0)

    def predecoded() -> torch.Tensor:
        crops = []
        for index in torch.randint(len(decoded), (args.batch,), generator=draws).tolist():
            background = decoded[index]
            top, left, h, w = random_resized_crop_params(
                background.shape[1], background.shape[2], recipe.scale, recipe.ratio, draws
            )
            region = background[None, :, top : top + h, left : left + w].float()
            crop = F.interpolate(region, size=(recipe.crop, recipe.crop), mode="bilinear")
            flip = torch.rand(1, generator=draws).item() < 0.5
            crops.append(crop.flip(-1) if flip else crop)
        rgb = torch.cat(crops)
        backgrounds = (rgb.flip(1) - mean) / std  # BGR, 0-255 minus the Caffe mean
        return composite(images, masks, backgrounds)

    bank_build_ms = time_ms(
        lambda: BackgroundBank.from_folder(folder / "val", short_side=recipe.resize),
        build_repeats,
        warmup=0,
    )
    bank = BackgroundBank.from_folder(folder / "val", short_side=recipe.resize)
    replacer = BackgroundReplacer(bank, recipe)
    generator = torch.Generator().manual_seed(0)

    def bgbias() -> torch.Tensor:
        return replacer(images, masks, generator)

    reference_ms = time_ms(reference, args.repeats, sync=sync)
    predecoded_ms = time_ms(predecoded, args.repeats * 2, sync=sync)
    bgbias_ms = time_ms(bgbias, args.repeats * 2, sync=sync)
    print(
        f"building: pre-decoded tensors {predecoded_build_ms:7.0f} ms, bgbias bank "
        f"{bank_build_ms:7.0f} ms ({len(files)} photos, once per run)"
    )
    print(f"reference (PIL per image, in the step): {reference_ms:8.1f} ms/batch")
    print(f"pre-decoded uint8 tensors, per image:   {predecoded_ms:8.1f} ms/batch")
    print(f"bgbias (bank atlas, BackgroundReplacer):{bgbias_ms:8.1f} ms/batch")
    print(f"ratio: vs reference {reference_ms / bgbias_ms:.1f}")
    print(f"ratio: vs pre-decoded {predecoded_ms / bgbias_ms:.2f}")
    if device.type == "cpu":  # on a GPU bgbias always renders batched
        render_paths(bank, recipe, args.batch, args.repeats * 2)


def render_paths(bank, recipe, batch, repeats) -> None:
    """Both CPU render paths of BackgroundReplacer at several crop sizes (augment internals)."""
    print(
        f"CPU render paths, {batch} crops (bgbias renders per image above {PER_IMAGE_ABOVE} px, "
        "else batched):"
    )
    for crop in (64, 96, 128, 227):
        replacer = BackgroundReplacer(bank, recipe.with_overrides(crop=crop))
        draw = replacer.draw(batch, torch.Generator().manual_seed(1))
        atlas = replacer._normalised_atlas(torch.device("cpu"), torch.float32)
        batched = time_ms(lambda r=replacer, d=draw, a=atlas: r._render_batched(d, a), repeats)
        each = time_ms(lambda r=replacer, d=draw, a=atlas: r._render_each(d, a), repeats)
        print(f"  {crop:3d} px: batched grid_sample {batched:6.1f} ms, per image {each:6.1f} ms")


if __name__ == "__main__":
    main()
