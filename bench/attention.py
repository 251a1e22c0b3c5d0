"""SmoothGrad attention: the reference's one-image-per-backward loop vs bgbias's path.

Same model, images, noise and reference embedding in every row:

* reference loop: the model's parameters keep requiring grad (so every backward also computes
  weight gradients), one image's 25 noisy copies per forward/backward;
* frozen, NCHW: the same loop with the parameters frozen (input gradients only), weights in
  their usual layout: separates the two effects below;
* bgbias ``smoothgrad_maps``: parameters frozen and channels-last weights (``frozen()``), and
  ``--images-per-pass`` images' copies per forward/backward (a list compares batching: one
  image per backward against several).

Each row: median images/s over ``--repeats`` timed runs after a warm-up; the maps of every
row are checked against the reference loop's (max |difference|). With real weights on a CPU
the frozen-NCHW row matches exactly, while the channels-last weights of ``frozen()`` move the
normalised maps by about 7e-3 (summation order; measured 6.7e-3 for EfficientNet-Lite0).
The default is EfficientNet-Lite0 with its ImageNet weights (installed with bgbias).
An untrained model is no test of the maps: an untrained BN-Inception embeds every input almost
in the same direction (cosine 0.9999 to the black reference), so its input gradients are
rounding noise and any change of memory layout moves its maps by ~1e-2; its timings are valid.

    python bench/attention.py [--backbone bninception] [--images 4] [--images-per-pass 1,2,4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from pytorch_metric_learning.distances import CosineSimilarity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_sync, pick_device  # noqa: E402

from bgbias.attribution import (  # noqa: E402
    draw_noise,
    normalise,
    reference_embedding,
    smoothgrad_maps,
)
from bgbias.models import build_model  # noqa: E402


def one_image_per_backward(model, images, noise, reference, distance) -> torch.Tensor:
    maps = []
    for image, image_noise in zip(images, noise, strict=True):
        copies = (image[None] + image_noise).requires_grad_(True)
        loss = distance(model(copies), reference[None]).mean()
        model.zero_grad()
        loss.backward()
        maps.append(normalise(copies.grad.mean(dim=1).abs().sum(dim=0)[None])[0])
    return torch.stack(maps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="real weights (default: only for efficientnet_lite0, whose weights are installed)",
    )
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument(
        "--images-per-pass", help="list, e.g. 1,2,4; 1 is always run (default 1,2 CPU; 1,16 GPU)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    sync = device_sync(device)
    torch.manual_seed(0)
    pretrained = args.pretrained
    if pretrained is None:
        pretrained = args.backbone == "efficientnet_lite0"
    model = build_model(args.backbone, pretrained=pretrained).to(device).eval()
    size = model.recipe.crop
    # random colours in the model's input range (randn would be a near-black image)
    images = model.recipe.normalization(torch.rand(args.images, 3, size, size)).to(device)
    noise = draw_noise(images.cpu(), generator=torch.Generator().manual_seed(0)).to(device)
    reference = reference_embedding(model, model.recipe, device)
    distance = CosineSimilarity()
    default = "1,16" if device.type == "cuda" else "1,2"
    per_pass = sorted({1, *(int(v) for v in (args.images_per_pass or default).split(","))})
    print(
        f"{args.backbone} ({'real' if pretrained else 'untrained'} weights) at {size} px, "
        f"{args.images} images x 25 copies, device {device}, "
        f"torch threads {torch.get_num_threads()}, median of {args.repeats}; a shared machine"
    )

    def timed(fn):
        out = fn()  # warm-up
        rates = []
        for _ in range(args.repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            rates.append(args.images / (time.perf_counter() - start))
        return out, statistics.median(rates)

    ref_maps, ref_rate = timed(
        lambda: one_image_per_backward(model, images, noise, reference, distance)
    )
    rows = [("reference loop (params require grad, 1 image per backward)", ref_rate, 0.0)]
    for p in model.parameters():
        p.requires_grad_(False)
    nchw_maps, nchw_rate = timed(
        lambda: one_image_per_backward(model, images, noise, reference, distance)
    )
    for p in model.parameters():
        p.requires_grad_(True)
    difference = (ref_maps - nchw_maps).abs().max().item()
    rows.append(("params frozen, NCHW weights, 1 image per backward", nchw_rate, difference))
    for n in per_pass:
        maps, rate = timed(
            lambda n=n: smoothgrad_maps(
                model, images, reference, distance, noise=noise, images_per_pass=n
            )
        )
        difference = (ref_maps.cpu() - maps.cpu()).abs().max().item()
        rows.append((f"bgbias smoothgrad_maps, {n} image(s) per pass", rate, difference))
    for name, rate, difference in rows:
        print(f"{name:60s} {rate:7.3f} images/s  max |map difference| {difference:.1e}")
    best = max(rate for _, rate, _ in rows[2:])
    print(f"ratio: bgbias best vs reference {best / ref_rate:.2f}")
    print(f"ratio: channels-last weights (bgbias, 1 per pass) vs NCHW {rows[2][1] / nchw_rate:.2f}")
    for (_, rate, _), n in zip(rows[3:], per_pass[1:], strict=True):
        print(f"ratio: {n} images per pass vs 1 {rate / rows[2][1]:.2f}")


if __name__ == "__main__":
    main()
