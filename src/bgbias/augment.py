"""Compositing and BGAugment: replace image backgrounds with random crops of background photos.

``x_new = x * m + bg * (1 - m)`` for a whole batch, as tensor operations on the batch's device.
Each image gets its own background, RandomResizedCrop box and flip, drawn on the CPU from a
``torch.Generator`` (reproducible from a seed), then all crops are sampled from the bank's atlas
in one ``grid_sample`` call.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data.backgrounds import BackgroundBank, BackgroundSource, BackgroundSpec
from .data.transforms import Normalization, Recipe, random_resized_crop_boxes
from .errors import ConfigError

# CPU render path by crop size: bench/bgaugment.py times both paths at 64, 96, 128 and 227 px
# (its "CPU render paths" lines); the per-image one wins on large crops
PER_IMAGE_ABOVE = 96
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's, in [0, 1] units
IMAGENET_STD = (0.229, 0.224, 0.225)
# bank shorter side per output pixel when BGAugment picks it: the ImageNet resize/crop ratio
BANK_SIDE_PER_PIXEL = 256 / 224


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
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """The drawn background crops, normalised: (B, 3, H, W) on ``device``, (H, W) = ``size``
        (default: the recipe's crop x crop).

        Bilinear resampling of each box to H x W (align_corners=False, edge taps clamped to the
        box, as ``F.interpolate`` does), then the horizontal flip: torchvision's
        RandomResizedCrop(size=(H, W)) draws the same boxes for any output size.
        """
        atlas = self._normalised_atlas(torch.device(device), dtype)
        if atlas.device.type == "cpu" and max(self._size(size)) > PER_IMAGE_ABOVE:
            return self._render_each(draw, atlas, size)
        return self._render_batched(draw, atlas, size)

    def _size(self, size: tuple[int, int] | None) -> tuple[int, int]:
        return (self.recipe.crop, self.recipe.crop) if size is None else tuple(size)

    def _normalised_atlas(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        # Normalisation is per-channel affine, so it commutes with bilinear resampling:
        # normalising the atlas once saves a pass over every batch.
        key = (device, dtype)
        if key not in self._atlas:
            self._atlas[key] = self.recipe.normalization(
                self.bank.atlas(device, dtype)
            ).contiguous()
        return self._atlas[key]

    def _render_each(
        self, draw: BackgroundDraw, atlas: torch.Tensor, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        # For large crops on a CPU, one F.interpolate per image beats one grid_sample over the
        # atlas (separable, cache-friendly); bench/bgaugment.py measures both.
        size = self._size(size)
        out = torch.empty(len(draw), 3, *size, dtype=atlas.dtype)
        origins = self.bank.origins[draw.index].tolist()
        for i, ((oy, ox), (top, left, h, w), flip) in enumerate(
            zip(origins, draw.box.long().tolist(), draw.flip.tolist(), strict=True)
        ):
            region = atlas[:, :, oy + top : oy + top + h, ox + left : ox + left + w]
            resized = F.interpolate(region, size=size, mode="bilinear", align_corners=False)
            out[i] = resized[0].flip(-1) if flip else resized[0]
        return out

    def _render_batched(
        self, draw: BackgroundDraw, atlas: torch.Tensor, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        out_h, out_w = self._size(size)
        atlas_h, atlas_w = atlas.shape[-2:]
        device, dtype = atlas.device, atlas.dtype
        oy, ox = self.bank.origins[draw.index].double().unbind(1)
        top, left, h, w = draw.box.double().round().unbind(1)
        steps_y = (torch.arange(out_h, dtype=torch.float64) + 0.5) / out_h  # (H,)
        steps_x = (torch.arange(out_w, dtype=torch.float64) + 0.5) / out_w  # (W,)
        # pixel-edge coordinates inside each box, clamped to its outermost pixel centres
        ys = (steps_y[None, :] * h[:, None]).clamp(min=0.5).minimum(h[:, None] - 0.5)
        xs = (steps_x[None, :] * w[:, None]).clamp(min=0.5).minimum(w[:, None] - 0.5)
        xs = torch.where(draw.flip[:, None], w[:, None] - xs, xs)
        gy = (2.0 * (oy + top)[:, None] + 2.0 * ys) / atlas_h - 1.0
        gx = (2.0 * (ox + left)[:, None] + 2.0 * xs) / atlas_w - 1.0
        gy, gx = gy.to(device=device, dtype=dtype), gx.to(device=device, dtype=dtype)
        n = len(draw)
        grid = torch.stack(
            [gx[:, None, :].expand(n, out_h, out_w), gy[:, :, None].expand(n, out_h, out_w)],
            dim=-1,
        ).reshape(1, n * out_h, out_w, 2)
        out = F.grid_sample(
            atlas, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        return out.view(3, n, out_h, out_w).transpose(0, 1)

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


class BGAugment(nn.Module):
    """BGAugment: each image's background replaced by a random crop of a random background photo.

    ``forward(images, masks)``: images (B, 3, H, W), already normalised with ``mean``/``std``
    (torchvision's 0-1 units) or ``normalization`` (bgbias's, e.g. a BGR Caffe recipe); masks
    (B, 1, H, W) in [0, 1], 1 = foreground. Returns ``images * masks + bg * (1 - masks)`` (B, 3,
    H, W) on the images' device and dtype; each image is replaced with probability ``p``. The
    crops are RandomResizedCrop(``scale``, ``ratio``) + horizontal flip of the photos, drawn on
    the CPU from a generator seeded by ``seed`` (None: a fresh random seed).

    ``backgrounds``: a folder of photos, a named set (``"paper"`` once fetched), a list of photo
    paths and/or PIL images, or ``"procedural"`` (see
    :class:`~bgbias.data.backgrounds.BackgroundSource`); checked now, decoded at the first batch
    with shorter side ``short_side`` (None: ``ceil(max(H, W) * 256 / 224)`` per batch size).
    """

    def __init__(
        self,
        backgrounds: BackgroundSpec,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        normalization: Normalization | None = None,
        p: float = 1.0,
        seed: int | None = None,
        short_side: int | None = None,
        scale: tuple[float, float] = (0.16, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = True,
    ):
        super().__init__()
        if normalization is None:
            normalization = _normalization(
                IMAGENET_MEAN if mean is None else mean, IMAGENET_STD if std is None else std
            )
        elif mean is not None or std is not None:
            raise ConfigError("BGAugment: give mean/std or normalization, not both")
        # resize/crop are nominal: BGAugment renders at each batch's own size
        recipe = Recipe("bgaugment", 256, 224, normalization, tuple(scale), tuple(ratio), flip)
        self._setup(BackgroundSource(backgrounds), recipe, p, seed, short_side)

    @classmethod
    def from_bank(
        cls, bank: BackgroundBank, recipe: Recipe, *, p: float = 1.0, seed: int | None = None
    ) -> BGAugment:
        """Backgrounds from a decoded ``bank``, at every image size, cropped and normalised as
        ``recipe`` says (the preset training's own recipe)."""
        augment = cls.__new__(cls)
        nn.Module.__init__(augment)
        augment._setup(BackgroundSource(bank), recipe, p, seed, None)
        return augment

    def _setup(
        self,
        source: BackgroundSource,
        recipe: Recipe,
        p: float,
        seed: int | None,
        short_side: int | None,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"BGAugment: p must be in [0, 1], got {p}")
        if short_side is not None and short_side < 1:
            raise ConfigError(f"BGAugment: short_side must be positive, got {short_side}")
        self.source, self.recipe, self.p, self.seed = source, recipe, float(p), seed
        self.short_side = short_side
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()  # nondeterministic, as torchvision's transforms
        else:
            self.generator.manual_seed(seed)
        self._replacers: dict[int, BackgroundReplacer] = {}  # by the bank's shorter side
        if short_side is not None or source.kind == "bank":
            self._replacer_at(short_side or 0)  # decode now: errors come early

    def replacer(self, height: int, width: int) -> BackgroundReplacer:
        """The bank and crop recipe used for images of ``height`` x ``width`` (its ``draw``
        makes fixed choices, e.g. for a corrupted test set)."""
        return self._replacer_at(
            self.short_side or math.ceil(max(height, width) * BANK_SIDE_PER_PIXEL)
        )

    def _replacer_at(self, side: int) -> BackgroundReplacer:
        if self.source.kind == "bank":
            side = 0  # one bank for every size
        if side not in self._replacers:
            self._replacers[side] = BackgroundReplacer(self.source.bank(side), self.recipe)
        return self._replacers[side]

    def forward(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """images (B, 3, H, W) normalised, masks (B, 1, H, W) in [0, 1] -> (B, 3, H, W).

        ``generator`` (a CPU ``torch.Generator``) replaces the module's own for this batch.
        With ``p < 1`` the images not replaced are copied as they are; when none is, the input
        itself is returned.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        n, _, height, width = images.shape
        if masks.shape != (n, 1, height, width):
            raise ValueError(f"masks must be {(n, 1, height, width)}, got {tuple(masks.shape)}")
        generator = self.generator if generator is None else generator
        replacer = self.replacer(height, width)
        rows = None
        if self.p < 1.0:  # p = 1 draws nothing here: the same draws as BackgroundReplacer
            rows = (torch.rand(n, generator=generator) < self.p).nonzero()[:, 0]
            if len(rows) == 0:
                return images
            rows = rows.to(images.device)
            kept, images, masks = images, images[rows], masks[rows]
        draw = replacer.draw(len(images), generator)
        # rendered in the images' dtype: autocast would resample the atlas in float32
        device_type = images.device.type
        with (
            torch.autocast(device_type, enabled=False)
            if torch.amp.is_autocast_available(device_type)
            else contextlib.nullcontext()
        ):
            backgrounds = replacer.render(draw, images.device, images.dtype, (height, width))
        out = backgrounds.lerp_(images, masks.to(images.dtype))  # composite() without a copy
        if rows is None:
            return out
        return kept.index_copy(0, rows, out)

    def extra_repr(self) -> str:
        return f"backgrounds={self.source.description!r}, p={self.p}, seed={self.seed}"


def _normalization(mean: Sequence[float], std: Sequence[float]) -> Normalization:
    """torchvision-style RGB ``mean``/``std`` in [0, 1] units -> bgbias's 0-255 units."""
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ConfigError(
            f"BGAugment: mean and std need 3 values each, std > 0 (got {mean}, {std})"
        )
    return Normalization(
        "RGB", tuple(255.0 * float(m) for m in mean), tuple(255.0 * float(s) for s in std)
    )
