"""The decoding rules of bgbias.decoding: what every reader of images and masks gets."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bgbias.decoding import decode_image, load_image, load_mask, read_size
from bgbias.errors import DataError
from tests.helpers import write_oriented_jpeg


def test_truncated_image_is_reported_with_its_path(tmp_path: Path):
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.jpg: corrupt or truncated image"):
        load_image(path)


def test_garbage_file_is_not_an_image(tmp_path: Path):
    path = tmp_path / "junk.png"
    path.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"junk\.png"):
        read_size(path)
    with pytest.raises(DataError, match=r"junk\.png: corrupt"):
        load_image(path)


def test_mask_of_wrong_size_names_both_sizes(tmp_path: Path):
    path = tmp_path / "m.png"
    Image.new("L", (10, 12)).save(path)
    with pytest.raises(DataError, match=r"m\.png: mask is 10x12 but its image is 10x10"):
        load_mask(path, expected_size=(10, 10))


def test_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "nope.png")


# --- decoding rules (bgbias.io docstring) ------------------------------------------------------

SIXTEEN = np.array([[0, 257, 5000, 32896], [40000, 51400, 65280, 65535]], dtype=np.uint16)
SIXTEEN_AS_EIGHT = [[0, 1, 19, 128], [156, 200, 254, 255]]  # value / 257, rounded


def test_16bit_grey_png_image_is_scaled_not_clipped(tmp_path: Path):
    path = tmp_path / "deep.png"
    Image.fromarray(SIXTEEN).save(path)
    assert Image.open(path).mode == "I;16"
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (2, 4, 3)
    assert (rgb == np.array(SIXTEEN_AS_EIGHT)[:, :, None]).all()


def test_16bit_rgb_png_image_keeps_its_values(tmp_path: Path):
    path = tmp_path / "deep_rgb.png"
    _write_png16(path, np.stack([SIXTEEN, SIXTEEN // 2, SIXTEEN // 4], axis=-1), color_type=2)
    rgb = np.asarray(load_image(path)).astype(int)
    expected = np.stack([SIXTEEN, SIXTEEN // 2, SIXTEEN // 4], axis=-1) / 257
    assert np.abs(rgb - expected).max() <= 1  # PIL keeps the high byte: within one level


def test_16bit_mask_is_scaled_not_clipped(tmp_path: Path):
    path = tmp_path / "deep_mask.png"
    Image.fromarray(SIXTEEN).save(path)
    mask = load_mask(path, expected_size=(4, 2))
    assert mask.mode == "L" and np.asarray(mask).tolist() == SIXTEEN_AS_EIGHT


def test_single_channel_and_grey_masks_are_accepted(tmp_path: Path):
    values = np.array([[0, 255, 0], [128, 255, 0]], dtype=np.uint8)
    Image.fromarray(values > 0).save(tmp_path / "bilevel.png")  # mode 1
    Image.fromarray(np.repeat(values[:, :, None], 3, axis=2)).save(tmp_path / "grey_rgb.png")
    palette = Image.fromarray(values).convert("P")  # an all-grey palette
    palette.save(tmp_path / "palette.png")
    assert np.asarray(load_mask(tmp_path / "bilevel.png")).tolist() == [
        [0, 255, 0],
        [255, 255, 0],
    ]
    assert np.array_equal(np.asarray(load_mask(tmp_path / "grey_rgb.png")), values)
    assert np.array_equal(np.asarray(load_mask(tmp_path / "palette.png")), values)


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("red.png", lambda v: Image.fromarray(np.stack([v, v * 0, v * 0], -1)), "coloured"),
        ("cutout.png", lambda v: Image.fromarray(np.stack([v, v, v, v], -1)), "alpha channel"),
        ("cmyk.jpg", lambda v: Image.fromarray(np.stack([v] * 3, -1)).convert("CMYK"), "CMYK"),
        ("label_map.png", lambda v: _colour_palette(v), "coloured"),
    ],
)
def test_multichannel_and_colour_masks_are_rejected_naming_the_file(tmp_path, name, make, message):
    values = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    make(values).save(tmp_path / name)
    with pytest.raises(DataError, match=rf"{name.replace('.', '[.]')}: .*{message}") as error:
        load_mask(tmp_path / name)
    assert "\n" not in str(error.value)


def _colour_palette(values: np.ndarray) -> Image.Image:
    """A VOC-style label map: index 1 is red."""
    image = Image.fromarray((values > 0).astype(np.uint8), mode="L").convert("P")
    image.putpalette([0, 0, 0, 128, 0, 0])
    return image


def _write_png16(path: Path, array: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG written by hand (PIL writes 16-bit grey only)."""
    import struct
    import zlib

    height, width = array.shape[:2]
    rows = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_exif_orientation_is_applied_to_images(tmp_path: Path):
    displayed = np.zeros((40, 60, 3), dtype=np.uint8)
    displayed[5:15, 5:25] = 255  # top-left, wide
    write_oriented_jpeg(tmp_path / "phone.jpg", displayed)
    assert Image.open(tmp_path / "phone.jpg").size == (40, 60)  # stored portrait
    assert read_size(tmp_path / "phone.jpg") == (60, 40)  # displayed landscape
    image = np.asarray(load_image(tmp_path / "phone.jpg")).astype(int)
    assert image.shape == (40, 60, 3)
    assert np.abs(image - displayed).mean() < 4  # JPEG noise only


def test_mask_made_from_the_stored_pixels_is_turned_with_its_image(tmp_path: Path):
    displayed = np.zeros((40, 60), dtype=np.uint8)
    displayed[5:15, 5:25] = 255
    stored = Image.fromarray(displayed).transpose(Image.Transpose.ROTATE_90)  # 40x60
    stored.save(tmp_path / "stored.png")
    Image.fromarray(displayed).save(tmp_path / "displayed.png")
    for name in ("stored.png", "displayed.png"):
        mask = load_mask(tmp_path / name, expected_size=(60, 40), orientation=6)
        assert np.array_equal(np.asarray(mask), displayed), name
    with pytest.raises(DataError, match="mask is 40x60 but its image is 60x40"):
        load_mask(tmp_path / "stored.png", expected_size=(60, 40), orientation=1)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("limit", [1_500, 700])  # PIL warns above the limit, raises above 2x
def test_decompression_bomb_is_a_one_line_data_error(tmp_path, monkeypatch, limit):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (40, 40)).save(path)  # 1,600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    for read in (load_image, read_size, load_mask):
        with pytest.raises(DataError, match=r"bomb\.png: .* 1,600 pixels, over PIL's dec") as error:
            read(path)
        assert "\n" not in str(error.value) and f"{limit:,}" in str(error.value)


def test_reduced_jpeg_decoding_keeps_the_full_size(tmp_path: Path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (1030, 700), (40, 90, 200)).save(path)
    full = decode_image(path)
    assert (full.size, full.reduction, full.pixels.size) == ((1030, 700), 1, (1030, 700))
    half = decode_image(path, min_side=256)  # 700 // 256 = 2: half the resolution
    assert (half.size, half.reduction, half.pixels.size) == ((1030, 700), 2, (515, 350))
    assert decode_image(path, min_side=400).reduction == 1  # 350 < 400: would lose detail
    assert np.abs(np.asarray(half.pixels).astype(int) - [40, 90, 200]).max() <= 2


@pytest.mark.parametrize("bits", [8, 16])
def test_a_0_1_mask_is_read_as_0_255(tmp_path: Path, bits: int):
    """Masks saved as 0/1 (numpy's ``mask.astype(uint8)``) would read as near-empty."""
    values = np.array([[0, 1, 1], [0, 0, 1]], dtype=np.uint8 if bits == 8 else np.uint16)
    Image.fromarray(values).save(tmp_path / "zero_one.png")
    mask = load_mask(tmp_path / "zero_one.png", expected_size=(3, 2))
    assert np.asarray(mask).tolist() == [[0, 255, 255], [0, 0, 255]]
    soft = np.array([[0, 1, 2], [0, 0, 255]], dtype=np.uint8)  # a soft mask: kept as it is
    Image.fromarray(soft).save(tmp_path / "soft.png")
    assert np.array_equal(np.asarray(load_mask(tmp_path / "soft.png")), soft)


def test_mask_content_problem_names_empty_and_full_masks():
    from bgbias.decoding import mask_content_problem

    assert "empty" in mask_content_problem(Image.new("L", (4, 4), 0))
    assert "empty" in mask_content_problem(Image.new("L", (4, 4), 100))  # faint: no object
    assert "full" in mask_content_problem(Image.new("L", (4, 4), 255))
    half = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8))
    assert mask_content_problem(half) is None
