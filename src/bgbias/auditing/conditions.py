"""The audit's conditions, after the ImageNet backgrounds challenge (IN-9), made for retrieval.

Every condition is made from the query images as batched tensor ops on the model's device, in
its normalised input space (``x`` the image, ``m`` its mask, ``lerp(bg, x, m) = x*m +
bg*(1-m)``, the compositing BGAugment trains with):

* ``original``: ``x``.
* ``only_fg``: the object on a constant black background (IN-9's Only-FG).
* ``mixed_rand``: the object on a random crop of a random background photo; drawn ``repeats``
  times, repeat r from ``Generator(seed + r)`` (IN-9's Mixed-Rand).
* ``mixed_same``: the object on the background of another image of the *same class* (drawn
  ``repeats`` times), that image's ``only_bg`` version: its own object inpainted away, so no
  second object shows (IN-9's Mixed-Same). Needs labels; images alone in their class are left out.
* ``only_bg``: the image with its object inpainted away (OpenCV Telea): only the background
  is left (IN-9's Only-BG-T).
* ``blend`` at alpha: the background faded from the original (0) to ``mixed_rand``'s first draw
  (1): ``lerp(lerp(x, bg, alpha), x, m)``; alpha 0 and 1 are the original and that draw.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..augment import BackgroundDraw, BackgroundReplacer
from ..data.backgrounds import BackgroundBank
from ..data.transforms import Recipe
from .images import Pixels

CONDITIONS = ("original", "only_fg", "mixed_rand", "mixed_same", "only_bg")
REPEATED = ("mixed_rand", "mixed_same")  # drawn ``repeats`` times: mean and std


@dataclass(frozen=True)
class Variant:
    """One embedded version of the images: a condition and its repeat, or a blend step."""

    condition: str
    repeat: int = 0
    alpha: float | None = None

    @property
    def key(self) -> str:
        if self.alpha is not None:
            return f"blend@{self.alpha:g}"
        return f"{self.condition}#{self.repeat}" if self.condition in REPEATED else self.condition


def same_class_partners(labels: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """(N,) for each image another image of its class, drawn uniformly; -1 for an image alone
    in its class."""
    labels_t = torch.as_tensor(labels)
    partners = torch.full((len(labels_t),), -1, dtype=torch.long)
    for label in torch.unique(labels_t):
        members = torch.nonzero(labels_t == label).flatten()
        if len(members) < 2:
            continue
        # an offset in 1..n-1 within the class never lands on the image itself
        offsets = torch.randint(1, len(members), (len(members),), generator=generator)
        partners[members] = members[(torch.arange(len(members)) + offsets) % len(members)]
    return partners


def blend_alphas(steps: int) -> list[float]:
    """``steps`` evenly spaced alphas from 0 to 1 (at least the two ends)."""
    return [round(float(a), 6) for a in np.linspace(0.0, 1.0, max(2, steps))]


class ConditionMaker:
    """Makes every variant of a batch of images for one preprocessing recipe.

    ``pixels``: the images at the recipe's geometry (with inpainted backgrounds);
    ``labels``: (N,) classes or None (then no ``mixed_same``); ``bank``: the background photos
    of ``mixed_rand``, drawn as BGAugment draws them (the recipe's RandomResizedCrop + flip).
    """

    def __init__(
        self,
        pixels: Pixels,
        recipe: Recipe,
        bank: BackgroundBank,
        labels: np.ndarray | None,
        repeats: int,
        alphas: list[float],
        seed: int,
    ):
        self.pixels, self.recipe = pixels, recipe
        self.replacer = BackgroundReplacer(bank, recipe)
        n = len(pixels.images)
        self.draws: list[BackgroundDraw] = [
            self.replacer.draw(n, torch.Generator().manual_seed(seed + r)) for r in range(repeats)
        ]
        self.partners = (
            [
                same_class_partners(labels, torch.Generator().manual_seed(seed + 7919 + r))
                for r in range(repeats)
            ]
            if labels is not None
            else None
        )
        self.alphas = [a for a in alphas if 0.0 < a < 1.0]  # the ends are other variants
        self.repeats = repeats

    def variants(self) -> list[Variant]:
        """Every variant embedded for each image, in the order :meth:`make` yields them."""
        out = [Variant("original"), Variant("only_fg")]
        out += [Variant("mixed_rand", r) for r in range(self.repeats)]
        out += [Variant("blend", 0, a) for a in self.alphas]
        if self.partners is not None:
            out += [Variant("mixed_same", r) for r in range(self.repeats)]
        return out + [Variant("only_bg")]

    def _load(self, source: torch.Tensor, rows: torch.Tensor, device, dtype) -> torch.Tensor:
        rgb = source[rows].to(device, non_blocking=True).to(dtype).div_(255.0)
        return self.recipe.normalization(rgb)

    def make(
        self,
        rows: torch.Tensor,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        only: Collection[str] | None = None,
    ) -> Iterator[tuple[Variant, torch.Tensor]]:
        """Yields ``(variant, (B, 3, C, C) normalised images)`` for images ``rows`` (sorted),
        every variant or those whose key is in ``only``; mixed_same yields only the rows that
        have a same-class partner (see :meth:`rows_of`)."""
        for variant, batch in self._make(rows, device, dtype, only):
            if only is None or variant.key in only:
                yield variant, batch

    def _make(self, rows, device, dtype, only) -> Iterator[tuple[Variant, torch.Tensor]]:
        def wanted(*keys: str) -> bool:
            return only is None or any(k in only for k in keys)

        x = self._load(self.pixels.images, rows, device, dtype)
        m = self.pixels.masks[rows].to(device, non_blocking=True).to(dtype).div_(255.0)
        yield Variant("original"), x
        if wanted("only_fg"):
            black = self.recipe.normalization(torch.zeros(1, 3, 1, 1, device=device, dtype=dtype))
            yield Variant("only_fg"), torch.lerp(black.expand_as(x), x, m)
        blends = [Variant("blend", 0, alpha) for alpha in self.alphas]
        for r, draw in enumerate(self.draws):
            if not wanted(f"mixed_rand#{r}", *(v.key for v in blends if r == 0)):
                continue
            background = self.replacer.render(draw[rows], device, dtype)
            yield Variant("mixed_rand", r), torch.lerp(background, x, m)
            for variant in blends if r == 0 else []:
                faded = torch.lerp(x, background, variant.alpha)
                yield variant, torch.lerp(faded, x, m)
        for r, partners in enumerate(self.partners or []):
            keep = self.rows_of(Variant("mixed_same", r), rows)
            if len(keep) and wanted(f"mixed_same#{r}"):
                other = self._load(self.pixels.backgrounds, partners[keep], device, dtype)
                within = torch.searchsorted(rows, keep)
                yield Variant("mixed_same", r), torch.lerp(other, x[within], m[within])
        if wanted("only_bg"):
            yield Variant("only_bg"), self._load(self.pixels.backgrounds, rows, device, dtype)

    def rows_of(self, variant: Variant, rows: torch.Tensor) -> torch.Tensor:
        """The images of ``rows`` (sorted) that ``variant`` covers."""
        if variant.condition != "mixed_same":
            return rows
        return rows[self.partners[variant.repeat][rows] >= 0]

    def partner_of(self, repeat: int) -> torch.Tensor:
        """(N,) the image whose background ``mixed_same`` repeat ``repeat`` uses (-1: none)."""
        return self.partners[repeat]
