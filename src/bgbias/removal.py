"""Test-time background removal, the inference-time alternative to BGAugment: a mask model
(U2Net / U2NetP, :data:`bgbias.masks.predictors.PREDICTORS`) predicts each image's foreground,
the background is filled flat, then the model embeds the result.

The mask is predicted on the image exactly as the model will see it (after the recipe's resize
and centre crop; in a corrupted evaluation, on the image with its background already replaced),
never taken from a dataset's ground-truth masks. ``fill="mean"`` fills with the recipe's mean
colour, which the normalisation maps to 0: the input a convolution sees as "no signal".

:class:`MeasuredEmbedder` wraps any :class:`bgbias.adapters.Embedder`, optionally removes
backgrounds first, and measures the inference cost per image (mask model and embedding apart).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .adapters import Embedder
from .augment import composite
from .data.transforms import Recipe
from .registry import Registry


@dataclass(frozen=True)
class Fill:
    """A background colour, RGB in [0, 1]; None: the recipe's mean colour."""

    rgb: tuple[float, float, float] | None


FILLS: Registry[Fill] = Registry("background fill")
FILLS.register("mean", Fill(None))
FILLS.register("gray", Fill((0.5, 0.5, 0.5)))
FILLS.register("white", Fill((1.0, 1.0, 1.0)))
FILLS.register("black", Fill((0.0, 0.0, 0.0)))


class BackgroundRemover:
    """Removes backgrounds with ``predictor``, a :class:`bgbias.masks.predictors.MaskPredictor`
    (thread-safe when its ``predict`` is: onnxruntime sessions are).

    ``remover(rgb01 (B, 3, H, W), recipe)`` for batches of tensors (evaluation), ``remove(image,
    recipe)`` for one PIL image (a search query); both fill with the same colour."""

    def __init__(self, predictor, name: str, fill: str = "mean"):
        self.predictor = predictor
        self.name = name
        self.fill = fill
        self._fill_rgb = FILLS.get(fill).rgb

    def fill_color(self, recipe: Recipe) -> torch.Tensor:
        """(3, 1, 1) RGB in [0, 1]."""
        if self._fill_rgb is not None:
            return torch.tensor(self._fill_rgb).view(3, 1, 1)
        return recipe.normalization.inverse(torch.zeros(3, 1, 1)).clamp(0, 1)

    def predict_masks(self, images: list[Image.Image]) -> list[Image.Image]:
        """One L foreground mask (0-255) per RGB image, of its size."""
        outputs = self.predictor.predict([self.predictor.preprocess(i) for i in images])
        return [self.predictor.postprocess(o, i.size) for o, i in zip(outputs, images, strict=True)]

    def masks(self, rgb01: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) foreground masks in [0, 1]."""
        arrays = (rgb01.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        images = [Image.fromarray(a.cpu().numpy(), mode="RGB") for a in arrays]
        masks = np.stack([np.asarray(m, dtype=np.uint8) for m in self.predict_masks(images)])
        return torch.from_numpy(masks)[:, None].float().div_(255).to(rgb01.device)

    def __call__(self, rgb01: torch.Tensor, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
        masks = self.masks(rgb01)
        fill = self.fill_color(recipe).to(rgb01.device, rgb01.dtype).expand_as(rgb01)
        return composite(rgb01, masks, fill), masks

    def remove(self, image: Image.Image, recipe: Recipe) -> np.ndarray:
        """One RGB image -> (H, W, 3) float32 pixels 0-255, background filled (numpy: for one
        image, cheaper than torch's thread pool)."""
        return self.remove_each([image], recipe)[0]

    def remove_each(self, images: list[Image.Image], recipe: Recipe) -> list[np.ndarray]:
        """RGB images (any sizes) -> (H, W, 3) float32 pixels 0-255 each, background filled;
        one mask-model call for all (a server's concurrent queries; the engine batches them
        as its batch size for the device allows)."""
        fill = self.fill_color(recipe).flatten().numpy().astype(np.float32) * 255.0
        removed = []
        for image, mask in zip(images, self.predict_masks(images), strict=True):
            alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
            removed.append(np.asarray(image, dtype=np.float32) * alpha + fill * (1.0 - alpha))
        return removed


def load_remover(
    mask_model: str, fill: str = "mean", device: str = "cpu", threads: int | None = None
) -> BackgroundRemover:
    """A remover with mask model ``mask_model`` (a name in ``bgbias list mask-models``)."""
    from .masks.predictors import build_predictor

    FILLS.get(fill)  # an unknown fill fails before the model loads
    predictor = build_predictor(mask_model, "auto", device, batch_size=None, threads=threads)
    return BackgroundRemover(predictor, mask_model, fill)


class MeasuredEmbedder(Embedder):
    """``inner``, with backgrounds removed by ``remover`` first (when given), timing the mask
    model and the embedding per image. ``cost()`` reports the milliseconds per image."""

    def __init__(self, inner: Embedder, remover: BackgroundRemover | None = None):
        label = inner.label
        if remover is not None:
            label = f"{label} + test-time removal ({remover.name})"
        super().__init__(inner.spec, inner.form, inner.recipe, label, inner.details)
        self.inner = inner
        self.remover = remover
        self.config = inner.config
        self.distance = inner.distance
        self.device = inner.device
        self._lock = threading.Lock()
        self._seconds = {"mask": 0.0, "embed": 0.0}
        self._images = 0

    def to(self, device) -> MeasuredEmbedder:
        self.inner.to(device)
        self.device = self.inner.device
        return self

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images normalised by ``recipe`` -> (B, D) embeddings."""
        started = time.perf_counter()
        if self.remover is not None:
            normalization = self.recipe.normalization
            rgb, _ = self.remover(normalization.inverse(images).clamp(0, 1), self.recipe)
            images = normalization(rgb)
        masked = time.perf_counter()
        out = self.inner(images)
        self._sync()
        done = time.perf_counter()
        with self._lock:
            self._seconds["mask"] += masked - started
            self._seconds["embed"] += done - masked
            self._images += len(images)
        return out

    def describe(self) -> dict[str, Any]:
        description = self.inner.describe() | {"label": self.label}
        if self.remover is not None:
            description["test_time_removal"] = {
                "mask_model": self.remover.name,
                "fill": self.remover.fill,
            }
        return description

    def cost(self) -> dict[str, Any]:
        """Measured inference cost: milliseconds per image of the mask model, the embedding,
        and both, over every image embedded so far."""
        n = max(self._images, 1)
        mask, embed = (1000 * self._seconds[k] / n for k in ("mask", "embed"))
        return {
            "images": self._images,
            "device": str(self.device),
            "mask_model": self.remover.name if self.remover is not None else None,
            "ms_per_image": {
                "mask": round(mask, 3),
                "embed": round(embed, 3),
                "total": round(mask + embed, 3),
            },
        }
