"""SmoothGrad attribution maps and the attention score (PAPER.md section 7).

For an image x (eval transform) and a reference embedding e0 (the model's embedding of a black
image), 25 noisy copies x + N(0, (0.15 * (max x - min x))^2) are embedded; the loss is the mean
over copies of the training loss's own distance between each copy's embedding and e0. The map
is |mean over channels of d loss / d copy| summed over copies, then normalised to [0, 1] by its
minimum and 99th percentile. The attention score measures how much of the map lies on the
object's mask, relative to a uniform map.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from PIL import Image
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity

from .data.transforms import RECIPES, PairedTransform, Recipe

SAMPLES = 25
NOISE_LEVEL = 0.15


@torch.no_grad()
def reference_embedding(
    model: torch.nn.Module, recipe: Recipe, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """e0: the embedding (D,) of a black 500x500 image through the eval transform."""
    black, _ = PairedTransform(recipe, train=False)(Image.new("RGB", (500, 500)), None)
    return model(black[None].to(device))[0]


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode, parameters not requiring grad (no weight gradients) and channels-last
    convolution weights (faster input gradients on a CPU: bench/attention.py measures the gain),
    restored after."""
    was_training = model.training
    requires = [p.requires_grad for p in model.parameters()]
    was_channels_last = [
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
        for p in model.parameters()
    ]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        for p, r, last in zip(model.parameters(), requires, was_channels_last, strict=True):
            p.requires_grad_(r)
            if p.dim() == 4 and not last:
                p.data = p.data.contiguous()
        model.train(was_training)


def draw_noise(
    images: torch.Tensor,
    samples: int = SAMPLES,
    noise_level: float = NOISE_LEVEL,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SmoothGrad noise (B, S, C, H, W), std 0.15 * value range per image, drawn image by image
    (so chunking a dataset differently gives the same noise for the same generator)."""
    out = torch.empty(len(images), samples, *images.shape[1:])
    for i, image in enumerate(images):
        spread = noise_level * float(image.max() - image.min())
        out[i] = torch.randn(samples, *image.shape, generator=generator) * spread
    return out


def smoothgrad_maps(
    model: torch.nn.Module,
    images: torch.Tensor,
    reference: torch.Tensor,
    distance,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    images_per_pass: int = 1,
    samples: int = SAMPLES,
) -> torch.Tensor:
    """Normalised SmoothGrad maps (B, H, W) in [0, 1].

    images: (B, C, H, W) model inputs; reference: (D,) e0; distance: a pytorch-metric-learning
    distance (the training loss's ``loss.distance``); noise: (B, S, C, H, W) or drawn from
    ``generator``. ``images_per_pass`` images' copies share one forward/backward (use large
    values on a GPU; on a CPU one image's 25 copies already fill the cores).
    """
    device = reference.device
    if noise is None:
        noise = draw_noise(images, samples, generator=generator)
    samples = noise.shape[1]
    maps = []
    with frozen(model):
        for start in range(0, len(images), images_per_pass):
            x = images[start : start + images_per_pass].to(device)
            n = len(x)
            copies = (x[:, None] + noise[start : start + n].to(device)).flatten(0, 1)
            copies.requires_grad_(True)
            embeddings = model(copies)
            d = distance(embeddings, reference[None].to(embeddings.dtype))  # (n * S, 1)
            loss = d.view(n, samples).mean(dim=1).sum()  # per image: mean over its copies
            (grad,) = torch.autograd.grad(loss, copies)
            raw = grad.mean(dim=1).abs().view(n, samples, *grad.shape[-2:]).sum(dim=1)
            maps.append(normalise(raw).cpu())
    return torch.cat(maps)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> clamp((A - min) / (q99 - min), 0, 1) per map; a flat map becomes zeros."""
    flat = maps.flatten(1).float()
    low = flat.min(dim=1, keepdim=True).values
    high = torch.quantile(flat, 0.99, dim=1, keepdim=True)
    span = high - low
    scaled = torch.where(
        span > 0,
        (flat - low) / span.clamp(min=torch.finfo(flat.dtype).tiny),
        torch.zeros_like(flat),
    )
    return scaled.clamp(0.0, 1.0).view_as(maps)


def attention_score(attribution: torch.Tensor, mask: torch.Tensor) -> float:
    """(sum(A*m)/sum(A) - mean(m)) / (1 - mean(m)) for an (H, W) map A and mask m in [0, 1].

    1: all attribution on the object; 0: spread like a uniform map; < 0: on the background
    (at least -mean(m) / (1 - mean(m))). Undefined, returned as NaN: an all-zero map (no
    attribution), an empty mask (no object) and a full mask (no background). Aggregates
    ignore NaN and report how many there were.
    """
    a = attribution.double().flatten()
    m = mask.double().flatten()
    if a.shape != m.shape:
        raise ValueError(
            f"attribution {tuple(attribution.shape)} and mask {tuple(mask.shape)} differ"
        )
    total = float(a.sum())
    coverage = float(m.mean())
    if total <= 0.0 or coverage <= 0.0 or coverage >= 1.0:
        return math.nan
    return (float((a * m).sum()) / total - coverage) / (1.0 - coverage)


def seeded_noise(
    images: torch.Tensor,
    seeds: Sequence[int],
    samples: int = SAMPLES,
    noise_level: float = NOISE_LEVEL,
) -> torch.Tensor:
    """SmoothGrad noise (B, S, C, H, W) with image k's noise from ``Generator(seeds[k])``: an
    image's map does not depend on what else is in its batch."""
    return torch.cat(
        [
            draw_noise(images[k : k + 1], samples, noise_level, torch.Generator().manual_seed(seed))
            for k, seed in enumerate(seeds)
        ]
    )


def attention_scores(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    distance: BaseDistance | None = None,
    recipe: str | Recipe | None = None,
    reference: torch.Tensor | None = None,
    samples: int = SAMPLES,
    noise: float = NOISE_LEVEL,
    seed: int | Sequence[int] = 0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Per-image attention scores (B,) float64: the share of SmoothGrad attribution on the
    object's mask, 1 = all on the object, 0 = like a uniform map, < 0 = on the background, NaN
    for an empty or full mask (PAPER.md section 7; :func:`attention_score`).

    ``model``: (B, 3, H, W) normalised images -> (B, D) embeddings, run where its parameters
    are; ``images``: (B, 3, H, W) normalised as the model expects (the eval transform);
    ``masks``: (B, 1, H, W) in [0, 1], 1 = object. See :func:`attention_maps` for the options.
    """
    return attention_maps(
        model,
        images,
        masks,
        distance=distance,
        recipe=recipe,
        reference=reference,
        samples=samples,
        noise=noise,
        seed=seed,
        batch_size=batch_size,
    )[1]


def attention_maps(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    distance: BaseDistance | None = None,
    recipe: str | Recipe | None = None,
    reference: torch.Tensor | None = None,
    samples: int = SAMPLES,
    noise: float = NOISE_LEVEL,
    seed: int | Sequence[int] = 0,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`attention_scores` with the maps: ``(maps (B, H, W) in [0, 1] on the CPU, scores
    (B,) float64)``. The one path of `bgbias attention`, the audit and the Python API.

    ``distance``: what the training loss measures (its ``loss.distance``; the paper: Lp for
    contrastive/triplet, cosine for the others); default cosine similarity. ``reference``: e0
    (D,); default the model's embedding of a black 500x500 image through ``recipe``'s eval
    transform (a name in ``RECIPES`` or a Recipe; default the model's ``.recipe``, else
    "imagenet"). ``samples`` noisy copies of noise std ``noise`` x each image's value range;
    ``seed``: image k's noise from ``Generator(seed + k)``, or a sequence: from
    ``Generator(seed[k])``, so an image's score does not depend on its batch. ``batch_size``:
    images whose copies share one forward/backward (default 16 on a GPU, 1 on a CPU).
    """
    if images.dim() != 4 or masks.dim() != 4 or masks.shape[1] != 1:
        raise ValueError(
            f"images {tuple(images.shape)} and masks {tuple(masks.shape)}: expected "
            "(B, 3, H, W) and (B, 1, H, W)"
        )
    if masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)} "
            "(one (1, H, W) mask per image, of its size)"
        )
    seeds = [seed + k for k in range(len(images))] if isinstance(seed, int) else list(seed)
    if len(seeds) != len(images):
        raise ValueError(f"{len(seeds)} seeds for {len(images)} images")
    if reference is None:
        reference = _black_reference(model, recipe, images.device)
    if batch_size is None:
        batch_size = 16 if reference.device.type == "cuda" else 1
    maps = smoothgrad_maps(
        model,
        images,
        reference,
        CosineSimilarity() if distance is None else distance,
        noise=seeded_noise(images, seeds, samples, noise),
        images_per_pass=batch_size,
    )
    scores = [attention_score(a, m[0]) for a, m in zip(maps, masks.cpu(), strict=True)]
    return maps, torch.tensor(scores, dtype=torch.float64)


def _black_reference(
    model: torch.nn.Module, recipe: str | Recipe | None, fallback: torch.device
) -> torch.Tensor:
    """e0 on the model's device, in eval mode (the model's mode is restored after)."""
    recipe = recipe if recipe is not None else getattr(model, "recipe", "imagenet")
    if isinstance(recipe, str):
        recipe = RECIPES.get(recipe)
    device = next((p.device for p in model.parameters()), fallback)
    was_training = model.training
    try:
        return reference_embedding(model.eval(), recipe, device)
    finally:
        model.train(was_training)


def summarize_scores(scores: dict[str, float]) -> dict[str, float]:
    """mean and std (ddof=1) over defined scores, and how many were undefined (NaN)."""
    values = torch.tensor([v for v in scores.values() if not math.isnan(v)], dtype=torch.float64)
    return {
        "mean": float(values.mean()) if len(values) else math.nan,
        "std": float(values.std()) if len(values) > 1 else 0.0,
        "images": len(scores),
        "undefined": len(scores) - len(values),
    }
