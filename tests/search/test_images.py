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
    model_input,
    model_view,
    open_photo,
    view_pixels,
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
        (jpeg[: len(jpeg) // 2], PhotoRejected, 400, "corrupt or truncated image"),
        (encoded(Image.new("L", (10_000, 10_000)), "PNG"), TooManyPixels, 413, "100.0 megapixels"),
    ]
    for data, error, status, message in cases:
        with pytest.raises(error, match=message) as caught:
            open_photo(data, max_pixels=50_000_000)
        assert caught.value.status == status
        assert str(caught.value).startswith("upload: ") and "\n" not in str(caught.value)
    with pytest.raises(TooManyPixels, match="over the limit of 0.1 megapixels"):  # configurable
        open_photo(encoded(Image.new("RGB", (400, 300))), max_pixels=100_000)


def upload_input(data: bytes) -> torch.Tensor:
    """(3, crop, crop): the model input the server computes for the uploaded file ``data``."""
    photo = open_photo(data, draft_size=RECIPE.resize)
    return model_input(view_pixels(model_view(photo, RECIPE)), RECIPE.normalization)


def test_a_16_bit_png_gives_the_model_input_of_its_8_bit_version():
    rng = np.random.default_rng(3)
    deep = rng.integers(0, 65536, (90, 120), dtype=np.uint16)
    sixteen = encoded(Image.fromarray(deep), "PNG")
    assert Image.open(io.BytesIO(sixteen)).mode.startswith("I")  # really stored as 16-bit grey
    eight = encoded(Image.fromarray((deep >> 8).astype(np.uint8)), "PNG")
    difference = (upload_input(sixteen) - upload_input(eight)).abs()
    scale = torch.tensor(RECIPE.normalization.std).view(3, 1, 1) / 255  # model input -> 0..1
    assert (difference * scale).max() <= 1 / 255 + 1e-6


def test_an_exif_rotated_jpeg_gives_the_model_input_of_the_upright_photo():
    upright = np.zeros((90, 120, 3), dtype=np.uint8)
    upright[:45, :60] = (220, 30, 30)  # a red top-left quarter, a blue bottom-right one
    upright[45:, 60:] = (30, 30, 220)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees, as a phone held upright stores it
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    rotated = encoded(stored, quality=95, exif=exif.tobytes())
    expected = upload_input(encoded(Image.fromarray(upright), quality=95))
    error = (upload_input(rotated) - expected).abs().mean() * 64  # in 0-255 pixel levels
    assert error < 2.0
    ignored = (upload_input(encoded(stored, quality=95)) - expected).abs().mean() * 64
    assert ignored > 40  # what the model would see without the EXIF turn


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
    from bgbias.search.images import pixels_image

    rng = np.random.default_rng(0)
    view = Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8))
    for recipe in (RECIPE, BGR_RECIPE):  # RGB and Caffe's BGR
        expected = recipe.normalization(torch.from_numpy(np.asarray(view)).permute(2, 0, 1) / 255)
        assert torch.allclose(
            model_input(view_pixels(view), recipe.normalization), expected, atol=1e-4
        )
    assert np.array_equal(np.asarray(pixels_image(view_pixels(view))), np.asarray(view))
