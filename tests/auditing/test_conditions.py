"""Each condition on images with known masks does what its name says."""

import numpy as np
import torch

from bgbias.auditing.conditions import ConditionMaker, Variant, blend_alphas, same_class_partners
from bgbias.auditing.images import Pixels, inpaint_objects
from bgbias.backbones.small_cnn import RECIPE
from bgbias.data.backgrounds import BackgroundBank

SIZE = RECIPE.crop  # 64: the recipe's geometry, no resampling


def red_squares(n: int, seed: int = 0) -> Pixels:
    """Pure red squares (the object, hard mask) on green/blue noise (no red anywhere)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 3, SIZE, SIZE), np.uint8)
    images[:, 1:] = rng.integers(40, 200, size=(n, 2, SIZE, SIZE))
    masks = np.zeros((n, 1, SIZE, SIZE), np.uint8)
    for i in range(n):
        top, left = rng.integers(4, SIZE // 2, size=2)
        masks[i, 0, top : top + 24, left : left + 20] = 255
    images[:, 0][masks[:, 0] > 0] = 255
    images[:, 1][masks[:, 0] > 0] = 0
    images[:, 2][masks[:, 0] > 0] = 0
    pixels = Pixels(SIZE, SIZE, torch.from_numpy(images), torch.from_numpy(masks))
    pixels.backgrounds = inpaint_objects(pixels)
    return pixels


def made(maker: ConditionMaker, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {v.key: x for v, x in maker.make(rows, torch.device("cpu"))}


def maker_for(pixels: Pixels, labels=None, repeats: int = 2, alphas=(0.0, 0.5, 1.0)):
    bank = BackgroundBank.procedural(6, SIZE, seed=3)
    return ConditionMaker(pixels, RECIPE, bank, labels, repeats, list(alphas), seed=0)


def test_only_fg_keeps_object_pixels_exactly_and_blackens_the_rest():
    pixels = red_squares(4)
    variants = made(maker_for(pixels), torch.arange(4))
    x, fg = variants["original"], variants["only_fg"]
    inside = (pixels.masks == 255).expand_as(x)
    assert torch.equal(fg[inside], x[inside])
    black = RECIPE.normalization(torch.zeros(3, 1, 1))
    assert torch.allclose(fg[0][:, ~inside[0, 0]], black.expand(3, SIZE, SIZE)[:, ~inside[0, 0]])


def test_only_bg_leaves_no_object_pixel():
    pixels = red_squares(5, seed=1)
    variants = made(maker_for(pixels), torch.arange(5))
    rgb = RECIPE.normalization.inverse(variants["only_bg"]) * 255
    assert float(rgb[:, 0].max()) < 60  # the red object is gone everywhere, edges included
    outside = (pixels.masks[:, 0] == 0) & (
        torch.nn.functional.max_pool2d(pixels.masks.float(), 7, 1, 3)[:, 0] == 0
    )
    original = pixels.images.float()
    assert torch.allclose(
        rgb.permute(1, 0, 2, 3)[:, outside], original.permute(1, 0, 2, 3)[:, outside], atol=0.01
    )


def test_mixed_same_puts_the_object_on_a_same_class_background():
    pixels = red_squares(6, seed=2)
    labels = np.array([0, 0, 0, 1, 1, 2])  # class 2 has one image: no mixed_same for it
    maker = maker_for(pixels, labels)
    variants = made(maker, torch.arange(6))
    for repeat in range(2):
        partners = maker.partner_of(repeat)
        assert partners[5] == -1 and torch.equal(
            maker.rows_of(Variant("mixed_same", repeat), torch.arange(6)), torch.arange(5)
        )
        for i in range(5):
            j = int(partners[i])
            assert j != i and labels[j] == labels[i]
            composite = variants[f"mixed_same#{repeat}"][i]
            inside = pixels.masks[i, 0] == 255
            expected_bg = RECIPE.normalization(pixels.backgrounds[j].float() / 255)
            assert torch.allclose(composite[:, ~inside], expected_bg[:, ~inside], atol=1e-5)
            assert torch.equal(composite[:, inside], variants["original"][i][:, inside])


def test_same_class_partners_cover_every_member_and_never_self():
    labels = np.array([3, 3, 1, 3, 1, 7])
    partners = same_class_partners(labels, torch.Generator().manual_seed(0))
    assert partners[5] == -1
    for i in range(5):
        assert partners[i] != i and labels[partners[i]] == labels[i]


def test_mixed_rand_draws_new_backgrounds_per_repeat_reproducibly():
    pixels = red_squares(4, seed=3)
    a = made(maker_for(pixels), torch.arange(4))
    b = made(maker_for(pixels), torch.arange(4))
    inside = (pixels.masks == 255).expand_as(a["original"])
    for key in ("mixed_rand#0", "mixed_rand#1"):
        assert torch.equal(a[key], b[key])
        assert torch.equal(a[key][inside], a["original"][inside])
        assert not torch.allclose(a[key][~inside], a["original"][~inside])
    assert not torch.allclose(a["mixed_rand#0"], a["mixed_rand#1"])


def test_blend_fades_the_background_between_original_and_the_first_draw():
    pixels = red_squares(3, seed=4)
    variants = made(maker_for(pixels), torch.arange(3))
    midway = (variants["original"] + variants["mixed_rand#0"]) / 2
    assert torch.allclose(variants["blend@0.5"], midway, atol=1e-5)
    assert "blend@0" not in variants and "blend@1" not in variants  # the ends are reused
    assert blend_alphas(5) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_batches_give_the_same_variants_as_one_pass():
    pixels = red_squares(6, seed=5)
    labels = np.array([0, 0, 1, 1, 2, 2])
    maker = maker_for(pixels, labels)
    whole = made(maker, torch.arange(6))
    first, second = made(maker, torch.arange(0, 4)), made(maker, torch.arange(4, 6))
    for key, value in whole.items():
        assert torch.allclose(torch.cat([first[key], second[key]]), value, atol=1e-6), key
