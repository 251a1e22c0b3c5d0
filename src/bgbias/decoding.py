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
* **0/1 masks**: a mask whose largest value is 1 (saved as ``mask.astype(np.uint8)``) is read
  as 0/255; a soft mask reaching 1 at most would be empty anyway. :func:`mask_content_problem`
  names masks that are empty or full (what ``bgbias data check`` reports).
* **Orientation of a mask**: a mask is taken to be in its image's displayed orientation, which
  is what ``bgbias masks`` writes (it decodes through :func:`load_image`) and what rembg's
  ``remove`` computes. A mask made from the image's pixel array *as stored* (older rembg, numpy
  pipelines) has the image's stored size; when the image's EXIF tag turns it by 90 degrees that
  size differs from the displayed one, and the mask is turned with its image, so the two stay
  aligned. A mirroring or 180-degree tag keeps the size, so the two cases cannot be told apart
  there: the mask is taken as displayed. A mask's own EXIF tag (rare in PNGs) is applied first.
* **Decompression bombs**: a file of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (PIL's
  warning threshold, 89 million by default) raises :class:`DecompressionBomb`; raise that limit
  for trusted huge files. A reader of untrusted files (the search server) passes its own lower
  ``max_pixels``; the count comes from the header, before any pixel is decoded.
* **Sources**: a path, the file's bytes (an upload) or an open binary file; ``name`` says what
  to call a source that is not a path in messages. Every failure is one line naming the source,
  and its class says what went wrong: :class:`UnidentifiedImage` (not an image PIL can read),
  :class:`DecompressionBomb`, :class:`DamagedImage` (identified, but truncated or corrupt); an
  empty, missing or unsupported file is a plain :class:`DataError`.
* **Reduced decoding**: ``decode_image(path, min_side)`` lets a JPEG be decoded at 1/2, 1/4 or
  1/8 of its resolution (DCT scaling, PIL's draft mode) while its shorter side stays at least
  ``min_side``: a 1000x1333 photo bound for a 256-pixel resize decodes 4x fewer pixels.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

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
MASK_HALF = 128  # object where mask >= half of 255
MASK_RULE = "masks must be one channel, 0 = background, 255 = object (8-bit grey 'L')"

ImageSource = str | os.PathLike | bytes | BinaryIO  # a path, a file's bytes, an open file


class UnidentifiedImage(DataError):
    """Not an image file PIL can read (another kind of file, or a header damaged beyond
    recognition)."""


class DecompressionBomb(DataError):
    """More pixels than the limit (PIL's, or the reader's ``max_pixels``)."""


class DamagedImage(DataError):
    """An identified image whose pixels cannot be decoded: truncated or corrupt."""


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


def read_header(path: ImageSource, what: str = "image", name: str | None = None) -> ImageHeader:
    """Size, mode and EXIF orientation from the file header, without decoding the pixels."""
    with _opened(path, what, "not a readable", name) as image:
        orientation = _orientation(image, header_only=True)
        size = image.size
        if orientation >= 5:
            size = (size[1], size[0])
        return ImageHeader(size, image.mode, orientation)


def read_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as displayed, from the file header only."""
    return read_header(path).size


def decode_image(
    source: ImageSource,
    min_side: int | None = None,
    *,
    name: str | None = None,
    max_pixels: int | None = None,
) -> DecodedImage:
    """Decode an image as 8-bit RGB in its displayed orientation (see the module docstring).

    With ``min_side``, a JPEG whose shorter side is at least twice ``min_side`` is decoded at
    the largest power-of-two reduction that keeps its shorter side >= ``min_side``.
    ``max_pixels``: refuse larger images (None: ``PIL.Image.MAX_IMAGE_PIXELS``; a limit above
    twice PIL's is still PIL's). ``name`` names a source that is not a path in messages.
    A missing, empty, corrupt, truncated or oversized file raises :class:`DataError` (the
    subclasses above say which).
    """
    with _opened(source, "image", "corrupt or truncated", name, max_pixels) as image:
        full = image.size
        reduction = 1
        if min_side and min(full) >= 2 * min_side:
            drafted = image.draft(None, (min_side, min_side))  # JPEG only; else None
            if drafted is not None:
                reduction = round(full[0] / drafted[1][2])
        image.load()
        orientation = _orientation(image)
        pixels = _to_rgb(_label(source, name), image)
    size = (full[1], full[0]) if orientation >= 5 else full
    return DecodedImage(_apply_orientation(pixels, orientation), size, orientation, reduction)


def load_image(path: ImageSource) -> Image.Image:
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
def _opened(
    source: ImageSource,
    what: str,
    damaged: str,
    name: str | None = None,
    max_pixels: int | None = None,
) -> Iterator[Image.Image]:
    """``Image.open`` with every failure as a one-line DataError naming the source."""
    label = _label(source, name)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise DataError(f"{label}: empty file")
        source = io.BytesIO(source)
    try:
        image = Image.open(source)
    except FileNotFoundError:
        raise DataError(f"{label}: {what} file not found") from None
    except Image.DecompressionBombError as exc:  # PIL refuses twice its limit before we see it
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else None
        raise DecompressionBomb(_too_many_pixels(label, what, pixels, None)) from None
    except (UnidentifiedImageError, SyntaxError, ValueError):
        # PIL's message repeats the path (or names a BytesIO): nothing to add
        raise UnidentifiedImage(
            f"{label}: corrupt or truncated {what}, or not an image file PIL can read"
        ) from None
    except (IsADirectoryError, PermissionError) as exc:
        raise DataError(f"{label}: unreadable {what} file ({exc})") from None
    except OSError as exc:  # e.g. a JPEG cut inside its header
        raise DamagedImage(f"{label}: {damaged} {what} ({exc})") from None
    try:
        with image:
            too_large = _too_many_pixels(label, what, image.size[0] * image.size[1], max_pixels)
            if too_large:
                raise DecompressionBomb(too_large)
            yield image
    except Image.DecompressionBombError as exc:  # a frame or tile larger than the header says
        raise DecompressionBomb(f"{label}: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DamagedImage(f"{label}: {damaged} {what} ({exc})") from None


def _label(source: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return str(getattr(source, "name", "image bytes"))


def _too_many_pixels(
    label: str, what: str, pixels: int | None, max_pixels: int | None
) -> str | None:
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if limit is None or (pixels is not None and pixels <= limit):
        return None
    count = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
    if max_pixels is None:
        return (
            f"{label}: {what} has {count}, over PIL's decompression-bomb limit of {limit:,} "
            "(raise PIL.Image.MAX_IMAGE_PIXELS for a trusted file)"
        )
    megapixels = f" ({pixels / 1e6:.1f} megapixels)" if pixels is not None else ""
    return (
        f"{label}: {what} has {count}{megapixels}, over the limit of {limit / 1e6:.1f} megapixels"
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
        return _zero_one_to_255(image, np.asarray(image))
    if image.mode == "1":
        return image.convert("L")
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image)
        if values.size and values.max() == 1 and values.min() >= 0:
            return _zero_one_to_255(image, values)
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
    grey = np.ascontiguousarray(rgb[..., 0])
    return _zero_one_to_255(Image.fromarray(grey, mode="L"), grey)


def _zero_one_to_255(image: Image.Image, values: np.ndarray) -> Image.Image:
    """A mask whose largest value is 1 was saved as 0/1 (``mask.astype(np.uint8)``): read as
    0/255, else its objects would be 1/255 (near-empty) to every reader."""
    if not values.size or values.max() != 1:
        return image
    return Image.fromarray((values > 0).astype(np.uint8) * 255, mode="L")


def mask_content_problem(mask: Image.Image) -> str | None:
    """Why a decoded mask (mode ``L``) cannot separate object from background, or None: an
    empty mask (no pixel at or over half) leaves nothing to keep, a full one (every pixel at
    or over half) no background to replace."""
    values = np.asarray(mask)
    if not values.size:
        return None
    if values.max() < MASK_HALF:
        return f"mask is empty (no pixel >= {MASK_HALF}: no object); {MASK_RULE}"
    if values.min() >= MASK_HALF:
        return f"mask is full (every pixel >= {MASK_HALF}: no background); {MASK_RULE}"
    return None
