"""Compositing and BGAugment: replace image backgrounds with random crops of background photos.

``x_new = x * m + bg * (1 - m)`` for a whole batch, as tensor operations on the batch's device.
Each image gets its own background, RandomResizedCrop box and flip, drawn on the CPU from a
``torch.Generator`` (reproducible from a seed), then all crops are sampled from the bank's atlas
in one ``grid_sample`` call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .data.backgrounds import BackgroundBank
from .data.transforms import Recipe, random_resized_crop_boxes

# CPU render path by crop size: bench/bgaugment.py times both paths at 64, 96, 128 and 227 px
# (its "CPU render paths" lines); the per-image one wins on large crops
PER_IMAGE_ABOVE = 96


def composite(images: torch.Tensor, masks: torch.Tensor, backgrounds: torch.Tensor) -> torch.Tensor:
    """``images * masks + backgrounds * (1 - masks)``.

    images, backgrounds: (B, C, H, W) in the same (normalised) space; masks: (B, 1, H, W) in [0, 1].
    """
    return torch.lerp(backgrounds, images, masks.to(images.dtype))


@dataclass
class BackgroundDraw:
    """Per-image random choices for a batch (CPU tensors of length B).

    ``index``: background of each image; ``box``: (top, left, height, width) in background pixels;
    ``flip``: horizontal flip.
    """

    index: torch.Tensor
    box: torch.Tensor
    flip: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, rows: torch.Tensor | slice) -> BackgroundDraw:
        if isinstance(rows, torch.Tensor):
            rows = rows.cpu()
        return BackgroundDraw(self.index[rows], self.box[rows], self.flip[rows])


class BackgroundReplacer:
    """Replaces the backgrounds of normalised image batches with crops from ``bank``.

    The crops follow the recipe's *train* transform (RandomResizedCrop with its scale/ratio,
    horizontal flip), as the paper does for training, validation and test alike; the result is
    normalised with the recipe's normalisation so it can be composited with model inputs.
    """

    def __init__(self, bank: BackgroundBank, recipe: Recipe):
        self.bank = bank
        self.recipe = recipe
        self._atlas: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def draw(self, n: int, generator: torch.Generator | None = None) -> BackgroundDraw:
        """Random backgrounds, boxes and flips for ``n`` images (torchvision's RandomResizedCrop
        distribution: up to 10 tries per image, then a centre crop)."""
        r = self.recipe
        index = torch.randint(len(self.bank), (n,), generator=generator)
        size = self.bank.sizes[index]
        box = random_resized_crop_boxes(size[:, 0], size[:, 1], r.scale, r.ratio, generator).float()
        flip = (
            (torch.rand(n, generator=generator) < 0.5)
            if r.flip
            else torch.zeros(n, dtype=torch.bool)
        )
        return BackgroundDraw(index, box, flip)

    def render(
        self,
        draw: BackgroundDraw,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The drawn background crops, normalised: (B, 3, crop, crop) on ``device``.

        Bilinear resampling of each box to crop x crop (align_corners=False, edge taps clamped to
        the box, as ``F.interpolate`` does), then the horizontal flip.
        """
        atlas = self._normalised_atlas(torch.device(device), dtype)
        if atlas.device.type == "cpu" and self.recipe.crop > PER_IMAGE_ABOVE:
            return self._render_each(draw, atlas)
        return self._render_batched(draw, atlas)

    def _normalised_atlas(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        # Normalisation is per-channel affine, so it commutes with bilinear resampling:
        # normalising the atlas once saves a pass over every batch.
        key = (device, dtype)
        if key not in self._atlas:
            self._atlas[key] = self.recipe.normalization(
                self.bank.atlas(device, dtype)
            ).contiguous()
        return self._atlas[key]

    def _render_each(self, draw: BackgroundDraw, atlas: torch.Tensor) -> torch.Tensor:
        # For large crops on a CPU, one F.interpolate per image beats one grid_sample over the
        # atlas (separable, cache-friendly); bench/bgaugment.py measures both.
        crop = self.recipe.crop
        out = torch.empty(len(draw), 3, crop, crop, dtype=atlas.dtype)
        origins = self.bank.origins[draw.index].tolist()
        for i, ((oy, ox), (top, left, h, w), flip) in enumerate(
            zip(origins, draw.box.long().tolist(), draw.flip.tolist(), strict=True)
        ):
            region = atlas[:, :, oy + top : oy + top + h, ox + left : ox + left + w]
            resized = F.interpolate(region, size=(crop, crop), mode="bilinear", align_corners=False)
            out[i] = resized[0].flip(-1) if flip else resized[0]
        return out

    def _render_batched(self, draw: BackgroundDraw, atlas: torch.Tensor) -> torch.Tensor:
        crop = self.recipe.crop
        atlas_h, atlas_w = atlas.shape[-2:]
        device, dtype = atlas.device, atlas.dtype
        oy, ox = self.bank.origins[draw.index].double().unbind(1)
        top, left, h, w = draw.box.double().round().unbind(1)
        steps = (torch.arange(crop, dtype=torch.float64) + 0.5) / crop  # (crop,)
        # pixel-edge coordinates inside each box, clamped to its outermost pixel centres
        ys = (steps[None, :] * h[:, None]).clamp(min=0.5).minimum(h[:, None] - 0.5)
        xs = (steps[None, :] * w[:, None]).clamp(min=0.5).minimum(w[:, None] - 0.5)
        xs = torch.where(draw.flip[:, None], w[:, None] - xs, xs)
        gy = (2.0 * (oy + top)[:, None] + 2.0 * ys) / atlas_h - 1.0
        gx = (2.0 * (ox + left)[:, None] + 2.0 * xs) / atlas_w - 1.0
        gy, gx = gy.to(device=device, dtype=dtype), gx.to(device=device, dtype=dtype)
        n = len(draw)
        grid = torch.stack(
            [gx[:, None, :].expand(n, crop, crop), gy[:, :, None].expand(n, crop, crop)], dim=-1
        ).reshape(1, n * crop, crop, 2)
        out = F.grid_sample(
            atlas, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        return out.view(3, n, crop, crop).transpose(0, 1)

    def __call__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        generator: torch.Generator | None = None,
        draw: BackgroundDraw | None = None,
    ) -> torch.Tensor:
        """Composite ``images`` (B, 3, H, W) over new backgrounds using ``masks`` (B, 1, H, W).

        Pass ``draw`` for fixed choices (e.g. a corrupted test set), else they are drawn from
        ``generator``.
        """
        if images.shape[-1] != self.recipe.crop or images.shape[-2] != self.recipe.crop:
            raise ValueError(
                f"images are {tuple(images.shape[-2:])}, the recipe crops "
                f"{self.recipe.crop}x{self.recipe.crop}"
            )
        if draw is None:
            draw = self.draw(len(images), generator)
        backgrounds = self.render(draw, images.device, images.dtype)
        return backgrounds.lerp_(images, masks.to(images.dtype))  # composite() without a copy
