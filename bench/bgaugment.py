"""BGAugment compositing: the reference approach vs bgbias, one batch of 32 at 227 px.

Reference (PAPER.md section 4): inside the training step, for each image, open a random
background photo with PIL, apply the train transform (resize shorter side 256, RandomResizedCrop
227, flip, to tensor, BGR, x255 - mean), stack, composite. bgbias: backgrounds decoded once into
a bank, a batch of random crops rendered as tensor ops, composited on the batch's device.

    python bench/bgaugment.py [--device cuda] [--repeats 20]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import background_folder, time_ms  # noqa: E402

from bgbias.augment import BackgroundReplacer, composite  # noqa: E402
from bgbias.data.backgrounds import BackgroundBank  # noqa: E402
from bgbias.data.transforms import RECIPES, PairedTransform  # noqa: E402
from bgbias.io import is_image_file, load_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    recipe = RECIPES.get("bninception")
    folder, source = background_folder()
    files = sorted(p for p in (folder / "val").iterdir() if is_image_file(p))
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, recipe.crop, recipe.crop, device=device)
    masks = torch.rand(args.batch, 1, recipe.crop, recipe.crop, device=device)
    print(
        f"backgrounds: {len(files)} from {source}; batch {args.batch} at {recipe.crop} px; "
        f"device {device}; torch threads {torch.get_num_threads()}"
    )

    background_transform = PairedTransform(recipe, train=True)
    rng = random.Random(0)

    def reference() -> torch.Tensor:
        backgrounds = [
            background_transform(load_image(rng.choice(files)), None)[0] for _ in range(args.batch)
        ]
        return composite(images, masks, torch.stack(backgrounds).to(device))

    bank = BackgroundBank.from_folder(folder / "val", short_side=recipe.resize)
    replacer = BackgroundReplacer(bank, recipe)
    generator = torch.Generator().manual_seed(0)

    def bgbias() -> torch.Tensor:
        return replacer(images, masks, generator)

    reference_ms = time_ms(reference, args.repeats, sync=sync)
    bgbias_ms = time_ms(bgbias, args.repeats * 4, sync=sync)
    print(f"reference (PIL per image, in the step): {reference_ms:8.1f} ms/batch")
    print(f"bgbias (tensor bank, batched):          {bgbias_ms:8.1f} ms/batch")
    print(f"ratio: {reference_ms / bgbias_ms:.1f}")


if __name__ == "__main__":
    main()
