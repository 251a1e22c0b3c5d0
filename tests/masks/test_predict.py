"""bgbias.predict_masks: each input's mask at its own size, the very mask `bgbias masks` writes."""

import numpy as np
import pytest
import torch
from PIL import Image

import bgbias
from bgbias.cli import main
from bgbias.errors import ConfigError
from bgbias.masks.models import ModelFileError
from bgbias.masks.predictors import GrabCutPredictor


@pytest.fixture
def images(tmp_path):
    """Three photos of a bright object in the middle of a dark textured background, in two
    folders and of two sizes."""
    rng = np.random.default_rng(0)
    for name, (height, width) in {"a/0": (70, 90), "a/1": (70, 90), "b/0": (80, 64)}.items():
        pixels = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
        top, left = height // 4 + int(rng.integers(-3, 4)), width // 4 + int(rng.integers(-3, 4))
        pixels[top : top + height // 2, left : left + width // 2] = rng.integers(150, 255, 3)
        path = tmp_path / "images" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return tmp_path / "images"


def written_by_the_command(images, out, *options) -> dict:
    """`bgbias masks IMAGES OUT ...`: {image path: its mask as a uint8 array}."""
    assert main(["masks", str(images), str(out), *options]) == 0
    return {
        path: np.asarray(Image.open(out / path.relative_to(images).with_suffix(".png")))
        for path in sorted(images.rglob("*.png"))
    }


def test_grabcut_masks_equal_what_bgbias_masks_writes(images, tmp_path, capsys):
    expected = written_by_the_command(images, tmp_path / "masks", "--model", "grabcut")
    paths = list(expected)
    masks = bgbias.predict_masks(paths, model="grabcut")
    assert len(masks) == 3
    for path, mask in zip(paths, masks, strict=True):
        assert mask.mode == "L" and mask.size == Image.open(path).size
        assert np.array_equal(np.asarray(mask), expected[path])
        assert np.asarray(mask).max() == 255  # the object was found
    one = bgbias.predict_masks(Image.open(paths[2]), model=GrabCutPredictor())
    assert isinstance(one, Image.Image) and np.array_equal(np.asarray(one), expected[paths[2]])


def test_a_tensor_batch_gives_a_float_mask_batch_on_its_device(images, tmp_path):
    expected = written_by_the_command(images / "a", tmp_path / "masks", "--model", "grabcut")
    rgb = [torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1) for p in expected]
    batch = torch.stack(rgb).float() / 255  # (2, 3, 70, 90) in [0, 1]
    masks = bgbias.predict_masks(batch, model="grabcut")
    assert masks.shape == (2, 1, 70, 90) and masks.dtype == torch.float32
    assert masks.device == batch.device and masks.min() >= 0 and masks.max() == 1
    want = torch.from_numpy(np.stack(list(expected.values())))[:, None].float() / 255
    assert torch.equal(masks, want)
    single = bgbias.predict_masks(rgb[1], model="grabcut")  # uint8 (3, H, W) -> (1, H, W)
    assert torch.equal(single, want[1])
    mixed = bgbias.predict_masks([rgb[0], list(expected)[1]], model="grabcut")
    assert torch.equal(mixed[0], want[0]) and np.array_equal(np.asarray(mixed[1]), want[1, 0] * 255)


def test_inputs_are_checked_before_the_model_loads():
    with pytest.raises(ConfigError, match=r"values in \[-2, 2\]; give RGB in \[0, 1\]"):
        bgbias.predict_masks(torch.linspace(-2, 2, 3 * 8 * 8).view(1, 3, 8, 8), model="u2net")
    with pytest.raises(ConfigError, match=r"shape \(2, 8, 8\)"):
        bgbias.predict_masks(torch.zeros(2, 8, 8), model="u2net")
    with pytest.raises(ConfigError, match="cannot read a int"):
        bgbias.predict_masks([3], model="u2net")


def test_missing_weights_say_how_to_fetch_them(images, tmp_path, monkeypatch):
    for variable in ("U2NET_HOME", "REMBG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    with pytest.raises(ModelFileError) as error:
        bgbias.predict_masks(sorted(images.rglob("*.png")), model="u2netp", device="cpu")
    message = str(error.value)
    assert "\n" not in message and "run `bgbias mask-weights fetch u2netp`" in message


def test_real_u2netp_masks_equal_what_bgbias_masks_writes(
    images, tmp_path, real_model, monkeypatch
):
    path = real_model("u2netp")
    if path.parent.name == "models":  # a provisioned copy: found by name from here on
        monkeypatch.setenv("BGBIAS_HOME", str(path.parents[1]))
    options = ["--model", "u2netp", "--device", "cpu", "--backend", "onnxruntime"]
    expected = written_by_the_command(images, tmp_path / "masks", *options)
    masks = bgbias.predict_masks(list(expected), model="u2netp", device="cpu")
    for (image, want), mask in zip(expected.items(), masks, strict=True):
        assert mask.size == Image.open(image).size
        assert np.array_equal(np.asarray(mask), want)
        object_pixels = np.asarray(Image.open(image)).mean(axis=2) > 115
        assert ((np.asarray(mask) >= 128) == object_pixels).mean() > 0.9  # a real saliency map
