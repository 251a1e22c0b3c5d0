"""Guarded decoding: every bad photo is refused with a clear message and an HTTP status."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bgbias.backbones.small_cnn import RECIPE
from bgbias.search.images import (
    NotAnImage,
    PhotoRejected,
    TooManyPixels,
    model_view,
    open_photo,
)


def encoded(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_bad_photos_are_refused_with_a_status():
    jpeg = encoded(Image.new("RGB", (300, 200), (10, 200, 30)))
    cases = [
        (b"", PhotoRejected, 400, "empty file"),
        (b"%PDF-1.4 not a photo", NotAnImage, 415, "not an image file"),
        (jpeg[: len(jpeg) // 2], PhotoRejected, 400, "truncated or corrupt"),
        (encoded(Image.new("L", (10_000, 10_000)), "PNG"), TooManyPixels, 413, "100.0 megapixels"),
    ]
    for data, error, status, message in cases:
        with pytest.raises(error, match=message) as caught:
            open_photo(data, max_pixels=50_000_000)
        assert caught.value.status == status


def test_exif_orientation_is_applied_and_large_jpegs_decode_at_reduced_scale():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the camera held upright
    data = encoded(Image.new("RGB", (400, 300), "white"), exif=exif)
    assert open_photo(data).size == (300, 400)
    big = encoded(Image.new("RGB", (4000, 3000), (90, 90, 90)))
    photo = open_photo(big, draft_size=256)
    assert photo.size == (500, 375)  # 1/8 scale, still >= 256 on both sides
    assert model_view(photo, RECIPE).size == (RECIPE.crop, RECIPE.crop)


def test_model_input_is_the_recipes_normalisation():
    from bgbias.backbones.bninception import RECIPE as BGR_RECIPE
    from bgbias.search.images import model_input, pixels_image, view_pixels

    rng = np.random.default_rng(0)
    view = Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8))
    for recipe in (RECIPE, BGR_RECIPE):  # RGB and Caffe's BGR
        expected = recipe.normalization(torch.from_numpy(np.asarray(view)).permute(2, 0, 1) / 255)
        assert torch.allclose(
            model_input(view_pixels(view), recipe.normalization), expected, atol=1e-4
        )
    assert np.array_equal(np.asarray(pixels_image(view_pixels(view))), np.asarray(view))
