import numpy as np
import pytest
import torch
from PIL import Image

from bgbias.data.transforms import (
    RECIPES,
    Normalization,
    PairedTransform,
    random_resized_crop_boxes,
    random_resized_crop_params,
)


def _shape_pair(width=300, height=200):
    """An image that is white exactly where its mask is 255 (a disc and a bar), black elsewhere."""
    mask = np.zeros((height, width), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    mask[(yy - 80) ** 2 + (xx - 120) ** 2 < 50**2] = 255
    mask[150:170, 30:280] = 255
    image = np.repeat(mask[:, :, None], 3, axis=2)
    return Image.fromarray(image), Image.fromarray(mask)


@pytest.mark.parametrize("recipe", RECIPES.names())
@pytest.mark.parametrize("train", [True, False])
def test_mask_covers_the_same_pixels_after_every_transform(recipe, train):
    transform = PairedTransform(RECIPES.get(recipe), train=train)
    image, mask = _shape_pair()
    torch.manual_seed(0)
    for _ in range(20):
        x, m = transform(image, mask)
        crop = RECIPES.get(recipe).crop
        assert x.shape == (3, crop, crop) and m.shape == (1, crop, crop)
        rgb = RECIPES.get(recipe).normalization.inverse(x)
        # the image is the mask in every channel, so any misalignment shows as a difference
        assert torch.allclose(rgb, m.expand(3, -1, -1), atol=1e-4)
        assert m.min() >= 0.0 and m.max() <= 1.0


def test_bninception_recipe_is_caffe_bgr_minus_mean():
    recipe = RECIPES.get("bninception")
    assert (recipe.resize, recipe.crop, recipe.scale) == (256, 227, (0.16, 1.0))
    red = Image.new("RGB", (300, 260), (255, 0, 0))
    x, m = PairedTransform(recipe, train=False)(red, None)
    assert x.shape == (3, 227, 227)
    # channel 0 is blue, 2 is red; x*255 - (104, 117, 128); std 1
    assert torch.allclose(x[:, 100, 100], torch.tensor([-104.0, -117.0, 255.0 - 128.0]))
    assert torch.equal(m, torch.ones(1, 227, 227))  # no mask: everything is foreground


def test_imagenet_recipe_is_rgb_mean_std():
    x, _ = PairedTransform(RECIPES.get("imagenet"), train=False)(
        Image.new("RGB", (256, 256), (255, 0, 0)), None
    )
    expected = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor(
        [0.229, 0.224, 0.225]
    )
    assert torch.allclose(x[:, 5, 5], expected, atol=1e-5)


def test_eval_transform_is_deterministic_centre_crop():
    image, mask = _shape_pair(400, 256)
    transform = PairedTransform(RECIPES.get("bninception"), train=False)
    a, b = transform(image, mask), transform(image, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_normalization_round_trip():
    norm = Normalization("BGR", (104.0, 117.0, 128.0), (1.0, 1.0, 1.0))
    rgb = torch.rand(2, 3, 5, 5)
    assert torch.allclose(norm.inverse(norm(rgb)), rgb, atol=1e-5)


def test_random_resized_crop_respects_scale_and_ratio():
    generator = torch.Generator().manual_seed(0)
    for _ in range(500):
        top, left, h, w = random_resized_crop_params(
            200, 300, (0.16, 1.0), (3 / 4, 4 / 3), generator
        )
        assert top >= 0 and top + h <= 200 and left >= 0 and left + w <= 300
        # rounding of w and h moves area and ratio by at most about a pixel
        assert 0.16 * 0.98 <= h * w / (200 * 300) <= 1.0
        assert 3 / 4 * 0.98 <= w / h <= 4 / 3 * 1.02


def test_one_image_crop_equals_the_batched_crop_for_the_same_draws():
    sizes = [(200, 300), (64, 64), (40, 400), (400, 40), (227, 256)]
    for seed in range(40):
        for height, width in sizes:
            for scale, ratio in (((0.16, 1.0), (3 / 4, 4 / 3)), ((0.9, 1.0), (3.0, 4.0))):
                one = random_resized_crop_params(
                    height, width, scale, ratio, torch.Generator().manual_seed(seed)
                )
                batched = random_resized_crop_boxes(
                    torch.tensor([height]),
                    torch.tensor([width]),
                    scale,
                    ratio,
                    torch.Generator().manual_seed(seed),
                )
                assert one == tuple(int(v) for v in batched[0].tolist())
