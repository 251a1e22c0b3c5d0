"""Resampling of decoded images: resize + crop computed together, image and mask in one tensor.

The per-sample data path (:class:`~bgbias.data.transforms.PairedTransform`) runs here. It gives
the pixels of the straightforward pipeline (resize the shorter side with PIL's antialiased
bilinear filter, crop, resize the crop, flip) within one grey level, faster (``bench/loader.py``
measures both):

* the image and its mask are packed into one (1, 4, H, W) uint8 tensor (mask as channel 3), so
  every resize handles both at once, with torch's antialiased uint8 bilinear filter, which
  follows PIL's to within one grey level and is faster than PIL's (bench/loader.py's
  "resize" lines time both);
* a JPEG decoded at reduced resolution (``bgbias.decoding.decode_image(path, min_side)``) is
  resampled with PIL from a fractional box, so its geometry follows its full-resolution size
  exactly and it stays aligned with its full-resolution mask.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..decoding import DecodedImage

Box = tuple[int, int, int, int]  # (left, top, right, bottom), pixels


def shorter_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after resizing the shorter side to ``size`` (torchvision ``Resize(int)``:
    the longer side is truncated)."""
    if min(width, height) == size:
        return width, height
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def as_decoded(image: Image.Image | DecodedImage) -> DecodedImage:
    return image if isinstance(image, DecodedImage) else DecodedImage(image, image.size)


def resize_shorter(image: Image.Image | DecodedImage, size: int) -> Image.Image:
    """Resize so that the shorter side is ``size``; a reduced ``DecodedImage`` (JPEG draft)
    is resampled from its pixels to the size its full resolution would give."""
    source = as_decoded(image)
    frame = shorter_side_size(*source.size, size)
    return resized_region(source, frame, (0, 0, *frame))


def resized_region(
    image: Image.Image | DecodedImage, frame: tuple[int, int], box: Box
) -> Image.Image:
    """``image.resize(frame).crop(box)`` with PIL, computing only the pixels of ``box`` (in the
    resized frame) in one ``Image.resize(box=...)`` call; within one grey level of the two calls
    (float rounding of the filter weights)."""
    source = as_decoded(image)
    (width, height), reduction = source.size, source.reduction
    left, top, right, bottom = box
    if frame == (width, height) and reduction == 1:
        return source.pixels.crop(box)  # no resize: a plain crop
    if left < 0 or top < 0 or right > frame[0] or bottom > frame[1]:
        # the crop reaches outside (crop larger than the resize): PIL pads it with zeros
        whole = (0, 0, width / reduction, height / reduction)
        return source.pixels.resize(frame, Image.BILINEAR, box=whole).crop(box)
    # integer numerators and denominators: the box never rounds past the image's edge
    x_scale, y_scale = frame[0] * reduction, frame[1] * reduction
    source_box = (
        left * width / x_scale,
        top * height / y_scale,
        right * width / x_scale,
        bottom * height / y_scale,
    )
    return source.pixels.resize((right - left, bottom - top), Image.BILINEAR, box=source_box)


def packed(image: Image.Image, mask: Image.Image | None = None) -> torch.Tensor:
    """(1, 4, H, W) uint8, channels-last in memory: RGB and ``mask`` (255 where None) as
    channel 3: one resize of four channels costs about one of three, so the mask rides along
    (bench/loader.py's "resize" lines time 4 channels against 3 + 1)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    raw = np.frombuffer(image.tobytes("raw", "RGBX"), dtype=np.uint8)
    array = raw.reshape(image.height, image.width, 4).copy()  # writable: torch shares it
    if mask is not None:  # numpy writes one channel fast (3-of-4 strided copies are slow)
        array[:, :, 3] = np.asarray(mask if mask.mode == "L" else mask.convert("L"))
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, C, h, w) uint8 -> (1, C, *size): bilinear with antialiasing (PIL's filter)."""
    if tuple(pixels.shape[-2:]) == tuple(size):
        return pixels
    return F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)


def crop(pixels: torch.Tensor, box: Box) -> torch.Tensor:
    """``pixels[..., top:bottom, left:right]``, zeros where the box reaches outside (as PIL)."""
    left, top, right, bottom = box
    height, width = pixels.shape[-2:]
    pad = (max(0, -left), max(0, right - width), max(0, -top), max(0, bottom - height))
    if any(pad):
        pixels = F.pad(pixels, pad)
        left, top = left + pad[0], top + pad[2]
    return pixels[..., top : top + bottom - box[1], left : left + right - box[0]]


def frame_region(
    image: Image.Image | DecodedImage, mask: Image.Image | None, frame: tuple[int, int], box: Box
) -> torch.Tensor:
    """The image and its mask (as :func:`packed`) resized to ``frame`` (width, height) and
    cropped to ``box``: (1, 4, box height, box width) uint8."""
    source = as_decoded(image)
    if source.reduction == 1:
        return crop(resize(packed(source.pixels, mask), frame[::-1]), box)
    # reduced: PIL resamples only the box, from fractional edges; the mask likewise
    mask_region = resized_region(mask, frame, box) if mask is not None else None
    return packed(resized_region(source, frame, box), mask_region)
