"""``bgbias.predict_masks``: foreground masks for images in memory or on disk, from a notebook or
your own pipeline, through the engines of `bgbias masks` (``predictors.build_predictor``) and
the same per-image steps: decode (``load_image``), ``preprocess``, batched ``predict``,
``postprocess`` to the image's size. A path gives the very mask `bgbias masks` writes for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias, overload

import numpy as np
import torch
from PIL import Image

from ..decoding import load_image
from ..errors import ConfigError
from .predictors import MaskPredictor, build_predictor

ImageInput: TypeAlias = "str | os.PathLike | Image.Image | torch.Tensor"
CHUNK = 64  # images decoded and preprocessed ahead of the model at most (bounds memory)


@overload
def predict_masks(images: torch.Tensor, **options: Any) -> torch.Tensor: ...
@overload
def predict_masks(images: str | os.PathLike | Image.Image, **options: Any) -> Image.Image: ...
@overload
def predict_masks(images: Sequence[ImageInput], **options: Any) -> list: ...


def predict_masks(
    images,
    *,
    model: str | MaskPredictor = "u2net",
    device: str | torch.device = "auto",
    backend: str = "auto",
    batch_size: int | None = None,
    threads: int | None = None,
    precision: str = "auto",
    workers: int | None = None,
):
    """Foreground masks (0 = background, 255 or 1.0 = object), each the size of its image.

    ``images``: a path or PIL image (-> mode ``L`` PIL mask), a (B, 3, H, W) or (3, H, W) RGB
    tensor in [0, 1] (or uint8) (-> (B, 1, H, W) / (1, H, W) float32 in [0, 1] on its device),
    or a list of these (-> a list, item by item).

    ``model``: "u2net" (the paper's), "u2netp" or "grabcut" (no weights), or a predictor from
    ``bgbias.masks.predictors.build_predictor`` to reuse across calls. ``device``, ``backend``,
    ``batch_size``, ``threads``, ``precision``: as `bgbias masks` (auto: torch on a GPU,
    onnxruntime on the CPU). U2Net weights come from `bgbias mask-weights fetch u2net`.
    ``workers``: decode/resize threads (default: one per core, at most 8).
    """
    batched = isinstance(images, torch.Tensor)
    if batched:
        if images.dim() not in (3, 4) or images.shape[-3] != 3:
            raise ConfigError(
                f"predict_masks: a tensor of shape {tuple(images.shape)}; "
                "expected (B, 3, H, W) or (3, H, W) RGB"
            )
        items = list(images[None] if images.dim() == 3 else images)
        single = images.dim() == 3
    else:
        single = isinstance(images, str | os.PathLike | Image.Image)
        items = [images] if single else list(images)
    sources = [_source(item) for item in items]  # checked before the model loads
    predictor = (
        model
        if isinstance(model, MaskPredictor)
        else build_predictor(model, backend, device, batch_size, threads, precision)
    )
    masks = run_predictor(predictor, sources, workers)
    if batched:
        stacked = torch.stack([_to_tensor(m, images.device) for m in masks])
        return stacked[0] if single else stacked
    out = [
        _to_tensor(mask, item.device) if isinstance(item, torch.Tensor) else mask
        for item, mask in zip(items, masks, strict=True)
    ]
    return out[0] if single else out


def run_predictor(
    predictor: MaskPredictor,
    sources: Sequence[str | os.PathLike | Image.Image],
    workers: int | None = None,
) -> list[Image.Image]:
    """Mode ``L`` masks of ``sources`` (paths are decoded as `bgbias masks` decodes them):
    preprocess on ``workers`` threads, ``predictor.predict`` in its batches, postprocess."""
    workers = workers or min(8, os.cpu_count() or 2)
    chunk = max(CHUNK, predictor.batch_size)
    masks: list[Image.Image] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(sources), chunk):
            batch = sources[start : start + chunk]
            prepared = list(pool.map(prepare, [predictor] * len(batch), batch))
            outputs = predictor.predict([inputs for _, inputs in prepared])
            sizes = [size for size, _ in prepared]
            masks.extend(pool.map(predictor.postprocess, outputs, sizes))
    return masks


def prepare(
    predictor: MaskPredictor, source: str | os.PathLike | Image.Image
) -> tuple[tuple[int, int], Any]:
    """One image's (width, height) and model input: a path decoded as RGB in its displayed
    orientation (``load_image``), then ``predictor.preprocess``. `bgbias masks` uses it too."""
    image = source if isinstance(source, Image.Image) else load_image(source)
    return image.size, predictor.preprocess(image)


def _source(item) -> str | os.PathLike | Image.Image:
    """A path or PIL image as is; a (3, H, W) tensor (RGB in [0, 1], or uint8) as a PIL image."""
    if not isinstance(item, torch.Tensor):
        if not isinstance(item, str | os.PathLike | Image.Image):
            raise ConfigError(
                f"predict_masks: cannot read a {type(item).__name__}; give paths, PIL images "
                "or (3, H, W) / (B, 3, H, W) RGB tensors"
            )
        return item
    if item.dim() != 3 or item.shape[0] != 3:
        raise ConfigError(
            f"predict_masks: a tensor of shape {tuple(item.shape)}; expected (3, H, W) RGB"
        )
    if item.dtype != torch.uint8:
        low, high = float(item.min()), float(item.max())
        if low < 0.0 or high > 1.0:
            raise ConfigError(
                f"predict_masks: tensor values in [{low:.3g}, {high:.3g}]; give RGB in [0, 1] "
                "(not normalised model inputs) or uint8"
            )
        item = item.float().mul(255.0).round_().to(torch.uint8)
    return Image.fromarray(item.detach().permute(1, 2, 0).cpu().numpy())  # (H, W, 3): RGB


def _to_tensor(mask: Image.Image, device: torch.device) -> torch.Tensor:
    """Mode L mask -> (1, H, W) float32 in [0, 1] on ``device``."""
    return torch.from_numpy(np.asarray(mask).copy())[None].to(device).float().div_(255.0)
