"""Paired image + mask transforms and the preprocessing recipes of each backbone family.

One random crop / flip is drawn per sample and applied to the image and its mask alike, so the
mask keeps covering the same object pixels. Randomness comes from torch's global generator, which
DataLoader seeds per worker (as torchvision does), unless a ``torch.Generator`` is passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from ..decoding import DecodedImage
from ..registry import Registry
from .pixels import as_decoded, frame_region, resize, resize_shorter, shorter_side_size


@dataclass(frozen=True)
class Normalization:
    """Maps RGB images in [0, 1] to a backbone's input space.

    ``mean`` and ``std`` are in 0-255 units and in the order of ``channels`` (``"RGB"`` or
    ``"BGR"``): the Caffe BN-Inception recipe is BGR, mean (104, 117, 128), std 1.
    """

    channels: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)

    def __post_init__(self):
        if self.channels not in ("RGB", "BGR"):
            raise ValueError(f"channels must be 'RGB' or 'BGR', got {self.channels!r}")

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return mean, std

    def __call__(self, rgb01: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) RGB in [0, 1] -> normalised model input of the same shape."""
        x = rgb01 if self.channels == "RGB" else rgb01.flip(-3)
        mean, std = self._stats(x)
        return (x * 255.0 - mean) / std

    def from_uint8(self, rgb: torch.Tensor) -> torch.Tensor:
        """(3, H, W) uint8 RGB -> normalised float32, one pass per channel: ``self(rgb / 255)``
        without the [0, 1] intermediate and its copies."""
        order = (0, 1, 2) if self.channels == "RGB" else (2, 1, 0)
        out = torch.empty(rgb.shape, dtype=torch.float32, device=rgb.device)
        for channel, source in enumerate(order):
            torch.sub(rgb[source], self.mean[channel], out=out[channel])
            if self.std[channel] != 1.0:
                out[channel].div_(self.std[channel])
        return out

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> RGB in [0, 1] (for figures)."""
        mean, std = self._stats(x)
        rgb = (x * std + mean) / 255.0
        return rgb if self.channels == "RGB" else rgb.flip(-3)


@dataclass(frozen=True)
class Recipe:
    """Resize the shorter side to ``resize``; train: RandomResizedCrop(``crop``, ``scale``,
    ``ratio``) + horizontal flip; eval: center crop ``crop``; then ``normalization``."""

    name: str
    resize: int
    crop: int
    normalization: Normalization
    scale: tuple[float, float] = (0.16, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    extra: dict = field(default_factory=dict, compare=False)

    def with_overrides(self, **changes) -> Recipe:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# Each backbone registers the recipe its weights expect beside its definition (as timm keeps
# ``default_cfgs`` in the model's file); "imagenet" is the generic torchvision one.
RECIPES: Registry[Recipe] = Registry("transform recipe", providers=("bgbias.backbones",))
RECIPES.register(
    "imagenet",
    Recipe(
        "imagenet",
        resize=256,
        crop=224,
        normalization=Normalization("RGB", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    ),
)


CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop: tries before the centre-crop fallback


def random_resized_crop_boxes(
    height: torch.Tensor,
    width: torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(N, 4) boxes (top, left, crop_height, crop_width) for images of sizes (N,) ``height`` x
    ``width``, drawn as torchvision's RandomResizedCrop does: 10 tries of a random area and
    log-uniform aspect ratio, the first that fits wins, else a centre crop of clamped ratio."""
    n = len(height)
    height, width = height.double()[:, None], width.double()[:, None]
    area = (
        height
        * width
        * torch.empty(n, CROP_ATTEMPTS, dtype=torch.float64).uniform_(
            scale[0], scale[1], generator=generator
        )
    )
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(
        torch.empty(n, CROP_ATTEMPTS, dtype=torch.float64).uniform_(*log_ratio, generator=generator)
    )
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    height, width = height[:, 0], width[:, 0]
    corner = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    top = torch.floor(corner[:, 0] * (height - h + 1))
    left = torch.floor(corner[:, 1] * (width - w + 1))
    fallback = ~fits.any(dim=1)
    if fallback.any():  # centre crop, aspect ratio clamped into the allowed range
        fh, fw = height[fallback].clone(), width[fallback].clone()
        in_ratio = fw / fh
        narrow, wide = in_ratio < min(ratio), in_ratio > max(ratio)
        fh[narrow] = torch.round(fw[narrow] / min(ratio))
        fw[wide] = torch.round(fh[wide] * max(ratio))
        h[fallback], w[fallback] = fh, fw
        top[fallback] = torch.div(height[fallback] - fh, 2, rounding_mode="floor")
        left[fallback] = torch.div(width[fallback] - fw, 2, rounding_mode="floor")
    return torch.stack([top, left, h, w], dim=1)


def random_resized_crop_params(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """One image's (top, left, crop_height, crop_width): the same draws from ``generator`` and
    the same box as ``random_resized_crop_boxes`` for one image, in scalar Python (the per-image
    data path calls it for every sample; tensor ops on 10 numbers cost more than the maths)."""
    areas = torch.empty(CROP_ATTEMPTS, dtype=torch.float64).uniform_(*scale, generator=generator)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspects = torch.empty(CROP_ATTEMPTS, dtype=torch.float64).uniform_(
        *log_ratio, generator=generator
    )
    corner = torch.rand(2, dtype=torch.float64, generator=generator).tolist()
    for area_fraction, aspect in zip(areas.tolist(), aspects.exp().tolist(), strict=True):
        area = height * width * area_fraction
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = math.floor(corner[0] * (height - h + 1))
            left = math.floor(corner[1] * (width - w + 1))
            return top, left, h, w
    in_ratio = width / height  # centre crop, aspect ratio clamped into the allowed range
    h, w = height, width
    if in_ratio < min(ratio):
        h = round(width / min(ratio))
    elif in_ratio > max(ratio):
        w = round(height * max(ratio))
    return (height - h) // 2, (width - w) // 2, h, w


def center_crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """PIL box (left, top, right, bottom) of torchvision's CenterCrop; may reach outside
    the image when it is smaller than ``crop`` (PIL pads with zeros)."""
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return left, top, left + crop, top + crop


def center_view(image: Image.Image, resize_to: int, crop: int) -> Image.Image:
    """The shorter side resized to ``resize_to`` (PIL bilinear), then a ``crop`` x ``crop``
    centre crop: the eval geometry, for code that works on PIL images one at a time."""
    resized = resize_shorter(image, resize_to)
    return resized.crop(center_crop_box(resized.width, resized.height, crop))


class PairedTransform:
    """``(image, mask) -> (image_tensor (3, crop, crop), mask_tensor (1, crop, crop))``.

    ``mask`` may be None (a dataset without masks): then an all-ones mask is returned, meaning
    "everything is foreground", which leaves images unchanged under compositing. ``image`` may
    be a :class:`~bgbias.decoding.DecodedImage` decoded at reduced resolution (down to
    ``source_side``): its geometry follows its full-resolution size, so it stays aligned with
    its full-resolution mask.
    """

    def __init__(self, recipe: Recipe, train: bool):
        self.recipe = recipe
        self.train = train

    def __repr__(self) -> str:
        return f"PairedTransform({self.recipe.name}, train={self.train})"

    @property
    def source_side(self) -> int:
        """The shorter side images are resized to: decoding more pixels than that is wasted
        (``bgbias.decoding.decode_image(path, min_side=source_side)``)."""
        return self.recipe.resize

    def __call__(
        self,
        image: Image.Image | DecodedImage,
        mask: Image.Image | None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.recipe
        source = as_decoded(image)
        if mask is not None and mask.size != source.size:
            raise ValueError(f"mask is {mask.size}, its image {source.size} (width, height)")
        frame = shorter_side_size(*source.size, r.resize)
        if self.train:
            top, left, h, w = random_resized_crop_params(
                frame[1], frame[0], r.scale, r.ratio, generator
            )
            box = (left, top, left + w, top + h)
        else:
            box = center_crop_box(*frame, r.crop)
        pixels = frame_region(source, mask, frame, box)[0]  # (4, h, w) uint8: RGB + mask
        if self.train:
            pixels = resize(pixels[None], (r.crop, r.crop))[0]
            if r.flip and torch.rand(1, generator=generator).item() < 0.5:
                pixels = pixels.flip(-1)
        x = r.normalization.from_uint8(pixels[:3])
        m = pixels[3:].float().div_(255.0) if mask is not None else torch.ones(1, r.crop, r.crop)
        return x, m
