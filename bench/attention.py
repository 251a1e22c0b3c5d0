"""SmoothGrad attention: the reference's one-image-per-backward loop vs bgbias's path.

Same model, images, noise and reference embedding. The reference loop leaves the model's
parameters requiring grad (so every backward also computes weight gradients) and runs one
image's 25 copies per forward/backward; bgbias freezes the parameters and sizes the batch to
the device (``--images-per-pass``, default 1 on CPU, 16 on GPU).

    python bench/attention.py [--backbone bninception] [--images 6] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from pytorch_metric_learning.distances import CosineSimilarity

from bgbias.attribution import draw_noise, normalise, reference_embedding, smoothgrad_maps
from bgbias.models import build_model


def reference_loop(model, images, noise, reference, distance) -> torch.Tensor:
    maps = []
    model.eval()  # parameters keep requires_grad=True, as the reference left them
    for image, image_noise in zip(images, noise, strict=True):
        copies = (image[None] + image_noise).requires_grad_(True)
        loss = distance(model(copies), reference[None]).mean()
        model.zero_grad()
        loss.backward()
        maps.append(normalise(copies.grad.mean(dim=1).abs().sum(dim=0)[None])[0])
    return torch.stack(maps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="bninception")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--images-per-pass", type=int)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = build_model(args.backbone, pretrained=False).to(device).eval()
    size = model.recipe.crop
    images = torch.randn(args.images, 3, size, size, device=device)
    noise = draw_noise(images.cpu(), generator=torch.Generator().manual_seed(0)).to(device)
    reference = reference_embedding(model, model.recipe, device)
    distance = CosineSimilarity()
    per_pass = args.images_per_pass or (16 if device.type == "cuda" else 1)
    print(
        f"{args.backbone} at {size} px, {args.images} images x 25 copies, device {device}, "
        f"bgbias images per pass {per_pass}, torch threads {torch.get_num_threads()}"
    )

    def timed(fn):
        fn()  # warm-up
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        return out, args.images / (time.perf_counter() - start)

    ref_maps, ref_rate = timed(lambda: reference_loop(model, images, noise, reference, distance))
    our_maps, our_rate = timed(
        lambda: smoothgrad_maps(
            model, images, reference, distance, noise=noise, images_per_pass=per_pass
        )
    )
    difference = (ref_maps.cpu() - our_maps.cpu()).abs().max().item()
    print(f"max |map difference|: {difference:.2e}")
    print(f"reference loop (params require grad, 1 image per backward): {ref_rate:7.3f} images/s")
    print(f"bgbias smoothgrad_maps:                                      {our_rate:7.3f} images/s")
    print(f"ratio: {our_rate / ref_rate:.2f}")


if __name__ == "__main__":
    main()
