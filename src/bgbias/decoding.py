"""Decoding images and masks: the rules every reader of pixels follows.

Every reader goes through :func:`decode_image` / :func:`load_image` and :func:`load_mask`:
training and evaluation datasets, mask generation, background banks. The rules:

* **Images** come out as 8-bit RGB in their *displayed* orientation: an EXIF Orientation tag
  (phone photos) is applied, as browsers, annotation tools and rembg's ``remove`` do. 16-bit
  files are scaled to 8 bits (value / 257, rounded), never clipped (which turns them white).
* **Masks** are one channel, 0 = background, 255 = object. Accepted: ``L``; ``1`` (0/255);
  16-bit grey (scaled as images are); palette (``P``) and ``RGB`` files whose pixels are all grey
  (r = g = b; the CUB hand masks are stored as grey RGB). Rejected, naming the file: modes with
  an alpha channel (``LA``, ``RGBA``: is the mask the alpha or the grey?), coloured RGB or palette
  masks (label maps, overlays: their grey conversion would be silently wrong), and every other
  mode (CMYK, float, ...). Reading only headers (:func:`read_header`) catches the rejected
  *modes*; coloured pixels in an RGB or palette mask are found when it is decoded.
* **Orientation of a mask**: a mask is taken to be in its image's displayed orientation, which
  is what ``bgbias masks`` writes (it decodes through :func:`load_image`) and what rembg's
  ``remove`` computes. A mask made from the image's pixel array *as stored* (older rembg, numpy
  pipelines) has the image's stored size; when the image's EXIF tag turns it by 90 degrees that
  size differs from the displayed one, and the mask is turned with its image, so the two stay
  aligned. A mirroring or 180-degree tag keeps the size, so the two cases cannot be told apart
  there: the mask is taken as displayed. A mask's own EXIF tag (rare in PNGs) is applied first.
* **Decompression bombs**: a file of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (PIL's
  warning threshold, 89 million by default) raises :class:`DataError`; raise that limit for
  trusted huge files.
* **Reduced decoding**: ``decode_image(path, min_side)`` lets a JPEG be decoded at 1/2, 1/4 or
  1/8 of its resolution (DCT scaling, PIL's draft mode) while its shorter side stays at least
  ``min_side``: a 1000x1333 photo bound for a 256-pixel resize decodes 4x fewer pixels.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

ORIENTATION_TAG = 0x0112  # EXIF Orientation
TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
MASK_MODES = frozenset({"1", "L", "P", "RGB", *SIXTEEN_BIT_MODES})  # P, RGB: grey pixels only
ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
MASK_RULE = "masks must be one channel, 0 = background, 255 = object (8-bit grey 'L')"


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, without decoding pixels."""

    size: tuple[int, int]  # (width, height) as displayed: EXIF orientation applied
    mode: str  # PIL mode of the stored pixels
    orientation: int  # EXIF orientation, 1 (none) to 8

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) of the pixel array as stored, before the orientation."""
        return (self.size[1], self.size[0]) if self.orientation >= 5 else self.size


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image in its displayed orientation, decoded at ``1 / reduction`` of its resolution.

    ``pixels`` spans the whole image: full-resolution coordinate x is ``x / reduction`` in it.
    """

    pixels: Image.Image
    size: tuple[int, int]  # (width, height) of the full-resolution image, as displayed
    orientation: int = 1  # the EXIF orientation that was applied
    reduction: int = 1  # 1, or 2, 4, 8 for a JPEG decoded with DCT scaling


def read_header(path: str | os.PathLike, what: str = "image") -> ImageHeader:
    """Size, mode and EXIF orientation from the file header, without decoding the pixels."""
    with _opened(path, what, "not a readable") as image:
        orientation = _orientation(image, header_only=True)
        size = image.size
        if orientation >= 5:
            size = (size[1], size[0])
        return ImageHeader(size, image.mode, orientation)


def read_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as displayed, from the file header only."""
    return read_header(path).size


def decode_image(path: str | os.PathLike, min_side: int | None = None) -> DecodedImage:
    """Decode an image as 8-bit RGB in its displayed orientation (see the module docstring).

    With ``min_side``, a JPEG whose shorter side is at least twice ``min_side`` is decoded at
    the largest power-of-two reduction that keeps its shorter side >= ``min_side``.
    A missing, corrupt, truncated or oversized file raises :class:`DataError`.
    """
    with _opened(path, "image", "corrupt or truncated") as image:
        full = image.size
        reduction = 1
        if min_side and min(full) >= 2 * min_side:
            drafted = image.draft(None, (min_side, min_side))  # JPEG only; else None
            if drafted is not None:
                reduction = round(full[0] / drafted[1][2])
        image.load()
        orientation = _orientation(image)
        pixels = _to_rgb(path, image)
    size = (full[1], full[0]) if orientation >= 5 else full
    return DecodedImage(_apply_orientation(pixels, orientation), size, orientation, reduction)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image fully as RGB in its displayed orientation; a missing, corrupt or truncated
    file raises DataError."""
    return decode_image(path).pixels


def load_mask(
    path: str | os.PathLike,
    expected_size: tuple[int, int] | None = None,
    orientation: int = 1,
) -> Image.Image:
    """Decode a single-channel mask (0 = background, 255 = object) as mode ``L``.

    ``expected_size`` is the displayed (width, height) of the image the mask belongs to and
    ``orientation`` that image's EXIF orientation: a mask of the image's *stored* size is turned
    with the image (see the module docstring). Any other size raises DataError.
    """
    with _opened(path, "mask", "corrupt or truncated") as image:
        problem = mask_mode_problem(image.mode)
        if problem:
            raise DataError(f"{path}: {problem}")
        image.load()
        own_orientation = _orientation(image)
        mask = _mask_to_l(path, image)
    mask = _apply_orientation(mask, own_orientation)
    if expected_size is None or mask.size == tuple(expected_size):
        return mask
    stored = (expected_size[1], expected_size[0])
    if orientation >= 5 and mask.size == stored:
        return mask.transpose(TRANSPOSE_FOR_ORIENTATION[orientation])
    raise DataError(mask_size_problem(path, mask.size, expected_size))


def mask_mode_problem(mode: str) -> str | None:
    """Why a mask stored in PIL mode ``mode`` is rejected, or None (see the module docstring)."""
    if mode in MASK_MODES:
        return None
    if mode in ALPHA_MODES:
        return (
            f"mask has an alpha channel (mode {mode}); {MASK_RULE}: save the channel you mean, "
            "e.g. Image.open(p).getchannel('A') for a cut-out"
        )
    try:
        channels = f"{Image.getmodebands(mode)} channels"
    except KeyError:
        channels = "unknown layout"
    return f"mask of mode {mode} ({channels}); {MASK_RULE}"


def mask_size_problem(
    path: str | os.PathLike, mask_size: tuple[int, int], image_size: tuple[int, int]
) -> str:
    return (
        f"{path}: mask is {mask_size[0]}x{mask_size[1]} but its image is "
        f"{image_size[0]}x{image_size[1]}"
    )


@contextlib.contextmanager
def _opened(path: str | os.PathLike, what: str, damaged: str) -> Iterator[Image.Image]:
    """``Image.open`` with every failure as a one-line DataError naming the file."""
    try:
        with Image.open(path) as image:
            too_large = _too_many_pixels(path, what, image.size[0] * image.size[1])
            if too_large:
                raise DataError(too_large)
            yield image
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except Image.DecompressionBombError as exc:  # PIL refuses twice its limit before we see it
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise DataError(
            _too_many_pixels(path, what, int(found.group(1)) if found else None)
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: {damaged} {what} ({exc})") from None


def _too_many_pixels(path: str | os.PathLike, what: str, pixels: int | None) -> str | None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or (pixels is not None and pixels <= limit):
        return None
    count = f"{pixels:,}" if pixels is not None else "too many"
    return (
        f"{path}: {what} has {count} pixels, over PIL's decompression-bomb limit of {limit:,} "
        "(raise PIL.Image.MAX_IMAGE_PIXELS for a trusted file)"
    )


def _orientation(image: Image.Image, header_only: bool = False) -> int:
    # a PNG's eXIf chunk may follow the pixels: PIL then decodes the image to find it
    if header_only and image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, TypeError):
        return 1  # unreadable EXIF: the pixels as stored
    return value if value in TRANSPOSE_FOR_ORIENTATION else 1


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    method = TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return image if method is None else image.transpose(method)


def _to_rgb(path: str | os.PathLike, image: Image.Image) -> Image.Image:
    # a loaded image keeps its pixels when its file closes: no copy needed
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        return _sixteen_to_eight(path, image, "image").convert("RGB")
    if image.mode == "F":
        raise DataError(f"{path}: 32-bit float image (mode F) is not supported; save it as 8-bit")
    return image.convert("RGB")


def _sixteen_to_eight(path: str | os.PathLike, image: Image.Image, what: str) -> Image.Image:
    """16-bit grey -> 8-bit grey by value / 257, rounded (65535 -> 255, v * 257 -> v)."""
    values = np.asarray(image).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(
            f"{path}: {what} of mode {image.mode} has values outside 0..65535 "
            f"({values.min()}..{values.max()}); save it as 8-bit"
        )
    return Image.fromarray(((values + 128) // 257).astype(np.uint8), mode="L")


def _mask_to_l(path: str | os.PathLike, image: Image.Image) -> Image.Image:
    if image.mode == "L":
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode in SIXTEEN_BIT_MODES:
        return _sixteen_to_eight(path, image, "mask")
    if image.mode == "P":  # look the indices up ourselves: convert() warns on transparency
        palette = np.zeros((256, 3), dtype=np.uint8)
        entries = np.asarray(image.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
        palette[: len(entries)] = entries[:256]
        rgb = palette[np.asarray(image)]
    else:
        rgb = np.asarray(image)
    coloured = (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])
    if coloured.any():
        y, x = (int(v[0]) for v in np.nonzero(coloured))
        raise DataError(
            f"{path}: {image.mode} mask has coloured pixels, e.g. {tuple(rgb[y, x].tolist())} "
            f"at x={x}, y={y}; {MASK_RULE} (a colour mask's grey conversion would be wrong)"
        )
    return Image.fromarray(np.ascontiguousarray(rgb[..., 0]), mode="L")
