"""The fast data path (bgbias.data.pixels via PairedTransform) against the straightforward one."""

import numpy as np
import pytest
import torch
from PIL import Image

from bgbias.data.pixels import crop, resized_region, shorter_side_size
from bgbias.data.transforms import (
    RECIPES,
    PairedTransform,
    center_crop_box,
    random_resized_crop_params,
)
from bgbias.decoding import decode_image


def _photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Photo-like: smooth structure at several scales, sharp edges, sensor-like noise."""
    coarse = rng.integers(0, 256, size=(height // 12 + 1, width // 12 + 1, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), float)
    blocks = rng.integers(0, 2, size=(height // 40 + 1, width // 40 + 1, 1)) * 60.0
    pixels = pixels + np.kron(blocks, np.ones((40, 40, 1)))[:height, :width]
    pixels += rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _straightforward(image, mask, recipe, train, generator):
    """torchvision's order of PIL operations: resize the shorter side, (random) crop, resize the
    crop, flip; uint8 arrays (H, W, 3) and (H, W)."""
    frame = shorter_side_size(*image.size, recipe.resize)
    if frame != image.size:
        image, mask = image.resize(frame, Image.BILINEAR), mask.resize(frame, Image.BILINEAR)
    if train:
        top, left, h, w = random_resized_crop_params(
            frame[1], frame[0], recipe.scale, recipe.ratio, generator
        )
        box, size = (left, top, left + w, top + h), (recipe.crop, recipe.crop)
        image = image.crop(box).resize(size, Image.BILINEAR)
        mask = mask.crop(box).resize(size, Image.BILINEAR)
        if torch.rand(1, generator=generator).item() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            mask = mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    else:
        box = center_crop_box(*frame, recipe.crop)
        image, mask = image.crop(box), mask.crop(box)
    return np.asarray(image).astype(int), np.asarray(mask).astype(int)


def _levels(x: torch.Tensor, m: torch.Tensor, recipe) -> tuple[np.ndarray, np.ndarray]:
    """Transform outputs back to grey levels: (H, W, 3) and (H, W)."""
    rgb = (recipe.normalization.inverse(x) * 255).round().permute(1, 2, 0).numpy().astype(int)
    return rgb, (m[0] * 255).round().numpy().astype(int)


@pytest.mark.parametrize("recipe_name", ["bninception", "imagenet"])
@pytest.mark.parametrize("train", [True, False])
def test_same_crops_and_values_as_resize_then_crop(recipe_name, train):
    """Same draws, same geometry; values within 2 grey levels (torch's uint8 antialiased
    bilinear against PIL's: measured max 2, mean 0.04 over 1440 train crops, 1 for eval)."""
    rng = np.random.default_rng(0)
    recipe = RECIPES.get(recipe_name)
    transform = PairedTransform(recipe, train=train)
    differences = []
    for width, height in [(500, 375), (375, 500), (333, 500), (227, 300), (256, 256)]:
        image, mask = _photo(rng, width, height), _photo(rng, width, height).convert("L")
        for seed in range(12 if train else 1):
            x, m = transform(image, mask, torch.Generator().manual_seed(seed))
            fast_image, fast_mask = _levels(x, m, recipe)
            ref_image, ref_mask = _straightforward(
                image, mask, recipe, train, torch.Generator().manual_seed(seed)
            )
            assert np.abs(fast_image - ref_image).max() <= 2
            assert np.abs(fast_mask - ref_mask).max() <= 2
            differences.append(np.abs(fast_image - ref_image).mean())
    assert np.mean(differences) < 0.1


def test_reduced_jpeg_gives_the_same_crops_within_resampling_noise(tmp_path):
    """A JPEG decoded at half resolution (DCT scaling) against the full decode, same draws:
    measured on this noisy synthetic photo mean 0.9-1.1 grey levels, max 8 (on the paper's
    Unsplash photos mean 0.4-0.6, max 26 at sharp edges: DCT scaling filters differently)."""
    rng = np.random.default_rng(1)
    path = tmp_path / "big.jpg"
    _photo(rng, 1101, 803).save(path, quality=90)
    full, reduced = decode_image(path), decode_image(path, min_side=256)
    assert reduced.reduction == 2 and reduced.size == full.size
    recipe = RECIPES.get("bninception")
    for train in (True, False):
        transform = PairedTransform(recipe, train=train)
        for seed in range(8):
            a, _ = transform(full, None, torch.Generator().manual_seed(seed))
            b, _ = transform(reduced, None, torch.Generator().manual_seed(seed))
            assert (a - b).abs().mean() < 1.5 and (a - b).abs().max() <= 16


@pytest.mark.parametrize("size", [(1101, 803), (1024, 768), (803, 1101)])
def test_reduced_jpeg_stays_aligned_with_its_full_resolution_mask(tmp_path, size):
    """A disc drawn in the image and its mask: after the eval transform their centroids agree to
    0.01 pixel (a one-pixel shift of the mask moves them apart by more than 0.2)."""
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    disc = ((yy - 0.47 * height) ** 2 + (xx - 0.52 * width) ** 2 < (0.1 * min(size)) ** 2) * 255
    disc = disc.astype(np.uint8)
    Image.fromarray(np.repeat(disc[:, :, None], 3, axis=2)).save(tmp_path / "a.jpg", quality=95)
    reduced = decode_image(tmp_path / "a.jpg", min_side=256)
    assert reduced.reduction == 2
    recipe = RECIPES.get("bninception")
    transform = PairedTransform(recipe, train=False)

    def centroid(values: np.ndarray) -> np.ndarray:
        ys, xs = np.mgrid[: values.shape[0], : values.shape[1]]
        return np.array([(values * xs).sum(), (values * ys).sum()]) / values.sum()

    for shift, expected in ((0, "aligned"), (1, "shifted")):
        mask = Image.fromarray(np.roll(disc, shift, axis=1))
        x, m = transform(reduced, mask)
        image_levels, mask_levels = _levels(x, m, recipe)
        offset = np.abs(centroid(image_levels.mean(axis=2)) - centroid(mask_levels)).max()
        assert (offset < 0.01) if expected == "aligned" else (offset > 0.2)


def test_region_resize_equals_resize_then_crop():
    image = _photo(np.random.default_rng(2), 500, 375)
    frame = shorter_side_size(500, 375, 256)
    whole = np.asarray(image.resize(frame, Image.BILINEAR)).astype(int)
    for box in [(0, 0, *frame), (17, 3, 200, 250), (100, 50, 101, 51)]:
        region = np.asarray(resized_region(image, frame, box)).astype(int)
        left, top, right, bottom = box
        assert np.abs(region - whole[top:bottom, left:right]).max() <= 1


def test_crop_pads_with_zeros_outside_like_pil():
    pixels = torch.arange(1, 13, dtype=torch.uint8).view(1, 1, 3, 4)
    out = crop(pixels, (-1, 1, 3, 4))  # one column left of the image, one row below
    assert out.shape == (1, 1, 3, 4)
    expected = np.asarray(Image.fromarray(pixels[0, 0].numpy()).crop((-1, 1, 3, 4)))
    assert np.array_equal(out[0, 0].numpy(), expected)


def test_mask_of_another_size_than_its_image_is_refused():
    transform = PairedTransform(RECIPES.get("generated"), train=True)
    with pytest.raises(ValueError, match="mask is"):
        transform(Image.new("RGB", (40, 30)), Image.new("L", (30, 40)))
