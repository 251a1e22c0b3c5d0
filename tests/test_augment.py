import pytest
import torch
import torch.nn.functional as F

from bgbias.augment import BackgroundDraw, BackgroundReplacer, composite
from bgbias.data.backgrounds import load_banks
from bgbias.data.transforms import RECIPES


@pytest.fixture
def replacer():
    bank = load_banks(None, short_side=64, count=8)["val"]
    return BackgroundReplacer(bank, RECIPES.get("generated"))


def test_composite_keeps_foreground_and_replaces_background_exactly():
    images, backgrounds = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    masks = (torch.rand(4, 1, 8, 8) > 0.5).float()
    out = composite(images, masks, backgrounds)
    fg = masks.expand_as(images).bool()
    assert torch.equal(out[fg], images[fg])
    assert torch.equal(out[~fg], backgrounds[~fg])
    soft = torch.full((4, 1, 8, 8), 0.25)
    assert torch.allclose(
        composite(images, soft, backgrounds), 0.25 * images + 0.75 * backgrounds, atol=1e-6
    )


def test_replacer_keeps_foreground_and_uses_the_drawn_backgrounds(replacer):
    images = torch.randn(6, 3, 64, 64)
    masks = torch.zeros(6, 1, 64, 64)
    masks[:, :, 10:30, 20:50] = 1.0
    draw = replacer.draw(6, torch.Generator().manual_seed(0))
    out = replacer(images, masks, draw=draw)
    fg = masks.expand_as(images).bool()
    assert torch.equal(out[fg], images[fg])
    assert torch.allclose(out[~fg], replacer.render(draw)[~fg])


def test_draws_are_reproducible_from_a_seed(replacer):
    images, masks = torch.randn(5, 3, 64, 64), torch.rand(5, 1, 64, 64)
    a = replacer(images, masks, torch.Generator().manual_seed(7))
    b = replacer(images, masks, torch.Generator().manual_seed(7))
    c = replacer(images, masks, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_each_image_gets_its_own_background(replacer):
    draw = replacer.draw(64, torch.Generator().manual_seed(0))
    assert len(set(draw.index.tolist())) > 4
    assert 0 < draw.flip.float().mean() < 1


def test_boxes_follow_random_resized_crop(replacer):
    recipe = replacer.recipe
    draw = replacer.draw(2000, torch.Generator().manual_seed(1))
    size = replacer.bank.sizes[draw.index].float()
    top, left, h, w = draw.box.unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= size[:, 0]).all() and (left + w <= size[:, 1]).all()
    area = h * w / (size[:, 0] * size[:, 1])
    assert area.min() >= recipe.scale[0] * 0.95 and area.max() <= 1.0
    assert ((w / h) >= recipe.ratio[0] * 0.95).all() and ((w / h) <= recipe.ratio[1] * 1.05).all()


def test_render_is_a_resized_crop_of_the_background(replacer):
    draw = BackgroundDraw(
        torch.tensor([3, 3]),
        torch.tensor([[4.0, 6.0, 40.0, 50.0]] * 2),
        torch.tensor([False, True]),
    )
    out = replacer.recipe.normalization.inverse(replacer.render(draw))
    image = replacer.bank.image(3).float()[None] / 255.0
    expected = F.interpolate(
        image[:, :, 4:44, 6:56], size=(64, 64), mode="bilinear", align_corners=False
    )
    assert torch.allclose(out[0], expected[0], atol=1e-5)
    assert torch.allclose(out[1], expected[0].flip(-1), atol=1e-5)


def test_batched_grid_path_matches_per_image_path(replacer):
    # the batched path runs on GPUs; it must give the CPU path's values
    draw = replacer.draw(16, torch.Generator().manual_seed(3))
    atlas = replacer._normalised_atlas(torch.device("cpu"), torch.float32)
    each, batched = replacer._render_each(draw, atlas), replacer._render_batched(draw, atlas)
    assert torch.allclose(each, batched, atol=1e-4)


def test_draw_rows_can_be_selected_for_fixed_test_sets(replacer):
    table = replacer.draw(10, torch.Generator().manual_seed(0))
    rows = torch.tensor([7, 2])
    sub = table[rows]
    assert sub.index.tolist() == table.index[rows].tolist() and len(sub) == 2
    assert torch.equal(replacer.render(sub)[1], replacer.render(table)[2])


def test_wrong_image_size_is_rejected(replacer):
    with pytest.raises(ValueError, match="the recipe crops 64x64"):
        replacer(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))


@pytest.mark.parametrize("size", [(40, 64), (64, 40), (100, 150)])
def test_render_at_any_size_is_the_box_resized_to_it(replacer, size):
    # BGAugment renders at each batch's (H, W): RandomResizedCrop(size=(H, W)) of the box
    draw = BackgroundDraw(
        torch.tensor([3, 3]),
        torch.tensor([[4.0, 6.0, 40.0, 50.0]] * 2),
        torch.tensor([False, True]),
    )
    image = replacer.bank.image(3).float()[None] / 255.0
    expected = F.interpolate(image[:, :, 4:44, 6:56], size=size, mode="bilinear")
    atlas = replacer._normalised_atlas(torch.device("cpu"), torch.float32)
    for path in (replacer._render_each, replacer._render_batched):
        out = replacer.recipe.normalization.inverse(path(draw, atlas, size))
        assert out.shape == (2, 3, *size)
        assert torch.allclose(out[0], expected[0], atol=1e-4)
        assert torch.allclose(out[1], expected[0].flip(-1), atol=1e-4)
    assert replacer.render(draw, size=size).shape == (2, 3, *size)
