"""Photos in, model inputs out: the model's view of a photo, thumbnails.

The index builder and the server both go through :func:`open_photo` and :func:`model_view`, so
a catalogue image and the same file uploaded as a query give the same embedding. Decoding
follows :mod:`bgbias.decoding`, the rules every reader of pixels in bgbias follows (EXIF
orientation, 16-bit scaling, the decompression-bomb guard from the header, JPEG DCT-scaled
decoding); this module only gives its failures the HTTP status a server answers with.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import decoding
from ..data.transforms import Normalization, Recipe, center_view
from ..errors import DataError
from ..io import write_bytes

DEFAULT_MAX_PIXELS = 50_000_000  # a 50-megapixel camera's photo; a 100-megapixel upload is refused
THUMB_QUALITY = 85


class PhotoRejected(DataError):
    """A photo that cannot be used; ``status`` is the HTTP status a server answers with."""

    status = 400


class NotAnImage(PhotoRejected):
    status = 415


class TooManyPixels(PhotoRejected):
    status = 413


REJECTION_FOR = {decoding.UnidentifiedImage: NotAnImage, decoding.DecompressionBomb: TooManyPixels}


def open_photo(
    source: bytes | str | os.PathLike,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    name: str = "upload",
) -> Image.Image:
    """Decode ``source`` (file bytes or a path) as an upright 8-bit RGB image.

    ``max_pixels``: refuse larger images before decoding (None: PIL's decompression-bomb
    limit); ``draft_size``: JPEGs may decode at a reduced scale whose sides stay >=
    ``draft_size``. ``name`` names bytes in messages. Raises :class:`PhotoRejected` (empty,
    missing, truncated/corrupt), :class:`NotAnImage` or :class:`TooManyPixels`.
    """
    label = name if isinstance(source, bytes) else None
    try:
        decoded = decoding.decode_image(source, draft_size, name=label, max_pixels=max_pixels)
    except DataError as exc:
        raise REJECTION_FOR.get(type(exc), PhotoRejected)(str(exc)) from None
    return decoded.pixels


def model_view(image: Image.Image, recipe: Recipe) -> Image.Image:
    """What the model sees: the shorter side resized to ``recipe.resize``, a centre crop of
    ``recipe.crop`` (the eval transform of :class:`bgbias.data.transforms.PairedTransform`)."""
    return center_view(image, recipe.resize, recipe.crop)


def view_pixels(view: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 RGB in 0-255."""
    return np.asarray(view, dtype=np.float32)


def model_input(pixels: np.ndarray, normalization: Normalization) -> torch.Tensor:
    """(H, W, 3) RGB pixels 0-255 -> (3, H, W) model input, as ``normalization`` maps it.

    numpy, not torch: for one image's few hundred thousand values torch's thread pool costs
    more than the arithmetic (measured on 2 busy cores: 60 ms against 0.6 ms single-threaded).
    """
    if normalization.channels == "BGR":
        pixels = pixels[..., ::-1]
    mean = np.asarray(normalization.mean, dtype=np.float32)
    std = np.asarray(normalization.std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1)))


def pixels_image(pixels: np.ndarray) -> Image.Image:
    """(H, W, 3) RGB 0-255 -> PIL RGB."""
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode="RGB")


def jpeg_bytes(image: Image.Image, max_side: int | None = None) -> bytes:
    """``image`` as JPEG, first shrunk to fit ``max_side`` x ``max_side`` when given."""
    if max_side is not None and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMB_QUALITY)
    return buffer.getvalue()


def write_thumbnail(image: Image.Image, path: Path, size: int) -> None:
    """A JPEG of ``image`` fitting ``size`` x ``size`` (written once per catalogue item, inside
    the index's build folder, whose rename makes the whole index appear at once)."""
    write_bytes(path, jpeg_bytes(image, size))
