"""A training step with ``bgbias.BGAugment`` in a plain PyTorch loop vs the preset's compositing.

Both steps do the same work on a batch of 32 (8 classes x 4) at 64 and at 227 px: replace the
backgrounds (the paper's val photos, or synthetic JPEGs: bench/_common.py), embed with bgbias's
``small_cnn`` backbone (trained from scratch, 128-d head), a pytorch-metric-learning
ContrastiveLoss, backward, an Adam step.

* api: ``bgbias.BGAugment(folder, seed=0)``, as a user's own loop writes it;
* preset: ``BackgroundReplacer(bank, recipe)(images, masks, generator)`` over the same photos
  at the same shorter side (BGAugment's default for the size): the compositing
  ``EmbeddingModule.training_step`` ran before it went through ``BGAugment.from_bank`` (the
  api path's code), so the ratio is the module's own overhead.

Both make the same draws (checked before timing). Set-up (imports, decoding the photos, the
first batch) is outside the timed part; two warm-up steps each, then ``rounds x repeats`` single
steps of each, alternated, medians reported (a shared machine drifts).

    python bench/api.py [--device cpu|cuda|auto] [--repeats 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch
from pytorch_metric_learning.losses import ContrastiveLoss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import background_folder, device_sync, pick_device, time_ms  # noqa: E402

import bgbias  # noqa: E402
from bgbias.augment import BANK_SIDE_PER_PIXEL, BackgroundReplacer  # noqa: E402
from bgbias.data.backgrounds import BackgroundBank  # noqa: E402
from bgbias.data.transforms import RECIPES  # noqa: E402
from bgbias.models import build_model  # noqa: E402

BATCH, CLASSES = 32, 8


def make_step(model, augment, images, masks, labels):
    """One training step: composite, embed, loss, backward, Adam step."""
    loss_fn = ContrastiveLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(augment(images, masks)), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 227])
    args = parser.parse_args()

    folder, source = background_folder()
    device = pick_device(args.device)
    sync = device_sync(device)
    print(
        f"backgrounds: {source}; batch {BATCH}; device {device}; "
        f"torch threads {torch.get_num_threads()}; a shared machine"
    )
    for size in args.sizes:
        api = bgbias.BGAugment(folder, seed=0)  # the bank's shorter side: BGAugment's default
        side = math.ceil(size * BANK_SIDE_PER_PIXEL)
        recipe = RECIPES.get("imagenet").with_overrides(resize=side, crop=size)
        bank = BackgroundBank.from_folder(folder / "val", short_side=side)
        replacer = BackgroundReplacer(bank, recipe)
        generator = torch.Generator().manual_seed(0)

        def preset(images, masks, r=replacer, g=generator):
            return r(images, masks, g)

        torch.manual_seed(0)
        images = torch.randn(BATCH, 3, size, size, device=device)
        masks = (torch.rand(BATCH, 1, size, size, device=device) > 0.4).float()
        labels = torch.arange(CLASSES, device=device).repeat_interleave(BATCH // CLASSES)
        check = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        same = torch.allclose(
            api(images, masks, check[0]), replacer(images, masks, check[1]), atol=1e-5
        )
        if not same:
            raise SystemExit(f"{size} px: the two paths composite different batches")

        steps = {}
        for name, augment in (("api", api), ("preset", preset)):
            torch.manual_seed(0)
            model = build_model("small_cnn", pretrained=False).to(device).train()
            steps[name] = make_step(model, augment, images, masks, labels)
        for step in (*steps.values(), *steps.values()):  # warm-up
            step()
        sync()
        # single steps, alternated: both paths see the same load on a shared machine
        times: dict[str, list[float]] = {"api": [], "preset": []}
        for i in range(args.rounds * args.repeats):
            for name in ("api", "preset") if i % 2 == 0 else ("preset", "api"):
                times[name].append(time_ms(steps[name], 1, warmup=0, sync=sync))
        api_ms, preset_ms = (statistics.median(times[k]) for k in ("api", "preset"))
        print(
            f"{size:3d} px: plain loop + bgbias.BGAugment {api_ms:8.1f} ms/step, "
            f"preset compositing (BackgroundReplacer) {preset_ms:8.1f} ms/step, "
            f"ratio preset/api {preset_ms / api_ms:.3f} (target >= 0.95)"
        )


if __name__ == "__main__":
    main()
