import math

import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance

import bgbias
from bgbias.attribution import (
    attention_maps,
    attention_score,
    draw_noise,
    frozen,
    normalise,
    reference_embedding,
    seeded_noise,
    smoothgrad_maps,
    summarize_scores,
)
from bgbias.models import build_model


def test_score_is_one_when_all_attribution_is_on_the_object():
    mask = torch.zeros(8, 8)
    mask[2:5, 2:6] = 1
    assert attention_score(mask * 0.7, mask) == pytest.approx(1.0)


def test_uniform_attribution_scores_zero():
    mask = torch.zeros(8, 8)
    mask[:3] = 1
    assert attention_score(torch.full((8, 8), 0.3), mask) == pytest.approx(0.0, abs=1e-12)


def test_all_attribution_outside_is_negative_with_the_exact_value():
    mask = torch.zeros(10, 10)
    mask[:2] = 1  # mean(m) = 0.2
    assert attention_score(1 - mask, mask) == pytest.approx(-0.2 / 0.8)


def test_soft_masks_weight_the_attribution():
    mask = torch.tensor([[1.0, 0.5], [0.0, 0.0]])
    attribution = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    expected = ((1.0 + 0.5) / 4.0 - 1.5 / 4) / (1 - 1.5 / 4)
    assert attention_score(attribution, mask) == pytest.approx(expected)


def test_undefined_cases_are_nan():
    mask = torch.zeros(4, 4)
    mask[0, 0] = 1
    assert math.isnan(attention_score(torch.zeros(4, 4), mask))  # no attribution
    assert math.isnan(attention_score(torch.rand(4, 4), torch.zeros(4, 4)))  # no object
    assert math.isnan(attention_score(torch.rand(4, 4), torch.ones(4, 4)))  # no background
    with pytest.raises(ValueError, match="differ"):
        attention_score(torch.rand(4, 4), torch.rand(5, 5))
    summary = summarize_scores({"a": 0.5, "b": float("nan"), "c": 0.7})
    assert (
        summary["mean"] == pytest.approx(0.6)
        and summary["undefined"] == 1
        and summary["images"] == 3
    )


def test_normalise_uses_min_and_99th_percentile():
    maps = torch.arange(200, dtype=torch.float32).view(1, 10, 20)
    out = normalise(maps)
    q99 = torch.quantile(maps.flatten(), 0.99)
    assert out.min() == 0 and out.max() == 1
    assert out.flatten()[100] == pytest.approx(100 / q99.item())
    assert torch.equal(normalise(torch.full((2, 3, 3), 5.0)), torch.zeros(2, 3, 3))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("small_cnn", pretrained=False, embedding_size=16).eval()


def test_batched_maps_equal_one_image_at_a_time(model):
    images = torch.randn(4, 3, 32, 32)
    reference = reference_embedding(model, model.recipe)
    noise = draw_noise(images, generator=torch.Generator().manual_seed(0))
    one = smoothgrad_maps(
        model, images, reference, CosineSimilarity(), noise=noise, images_per_pass=1
    )
    batched = smoothgrad_maps(
        model, images, reference, CosineSimilarity(), noise=noise, images_per_pass=4
    )
    assert one.shape == (4, 32, 32)
    assert torch.allclose(one, batched, atol=1e-5)


def test_map_follows_the_recipe_copy_by_copy(model):
    image = torch.randn(1, 3, 32, 32)
    reference = reference_embedding(model, model.recipe)
    noise = draw_noise(image, samples=5, generator=torch.Generator().manual_seed(1))
    distance = LpDistance()
    total = torch.zeros(32, 32)
    for s in range(5):  # one copy per backward, gradients of the mean over copies
        copy = (image[0] + noise[0, s])[None].requires_grad_(True)
        (distance(model(copy), reference[None]).sum() / 5).backward()
        total += copy.grad[0].mean(dim=0).abs()
    expected = normalise(total[None])
    got = smoothgrad_maps(model, image, reference, distance, noise=noise)
    assert torch.allclose(got, expected, atol=1e-5)


def test_noise_scale_is_fifteen_percent_of_the_value_range():
    images = torch.zeros(1, 3, 64, 64)
    images[0, 0, 0, 0], images[0, 1, 0, 1] = 2.0, -2.0  # range 4 -> std 0.6
    noise = draw_noise(images, samples=25, generator=torch.Generator().manual_seed(0))
    assert noise.std().item() == pytest.approx(0.6, rel=0.02)


def test_frozen_restores_the_model(model):
    model.train()
    model.head.weight.requires_grad_(True)
    convs = [p for p in model.parameters() if p.dim() == 4]
    for p in convs:
        p.data = p.data.contiguous()
    with frozen(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(p.is_contiguous() for p in convs)


def test_reference_is_the_black_image_embedding(model):
    black = model.recipe.normalization(torch.zeros(1, 3, 64, 64))
    with torch.no_grad():
        assert torch.allclose(reference_embedding(model, model.recipe), model(black)[0])


class Looking(torch.nn.Module):
    """An embedding model that only sees the pixels where ``region`` (1, H, W) is 1 (scaled to
    each input's size: the reference image is larger)."""

    def __init__(self, region: torch.Tensor):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.register_buffer("region", region)

    def forward(self, x):
        region = torch.nn.functional.interpolate(self.region[None], size=x.shape[-2:])
        return self.conv(x * region).relu().mean(dim=(2, 3))


def object_masks(count: int = 3, size: int = 32) -> torch.Tensor:
    masks = torch.zeros(count, 1, size, size)
    masks[:, :, 8:24, 10:22] = 1
    return masks


def test_public_scores_are_the_per_image_scores_of_the_maps(model):
    images, masks = torch.randn(3, 3, 32, 32), object_masks()
    masks[2, :, :, :4] = 0.5  # a soft edge
    scores = bgbias.attention_scores(model, images, masks, distance=LpDistance(), seed=7)
    reference = reference_embedding(model, model.recipe)  # the default: the model's recipe
    maps = smoothgrad_maps(
        model, images, reference, LpDistance(), noise=seeded_noise(images, [7, 8, 9])
    )
    expected = [attention_score(a, m[0]) for a, m in zip(maps, masks, strict=True)]
    assert scores.shape == (3,) and scores.dtype == torch.float64
    assert scores.tolist() == expected
    # an image's score does not depend on its batch: image k's noise comes from seed + k
    tail = bgbias.attention_scores(model, images[1:], masks[1:], distance=LpDistance(), seed=[8, 9])
    assert tail.tolist() == expected[1:]
    fewer = attention_maps(model, images[:1], masks[:1], samples=3, noise=0.3, seed=7)[0]
    again = smoothgrad_maps(
        model,
        images[:1],
        reference,
        CosineSimilarity(),
        noise=seeded_noise(images[:1], [7], 3, 0.3),
    )
    assert torch.equal(fewer, again)


def test_a_model_looking_at_the_object_scores_higher_than_one_looking_at_the_background():
    masks = object_masks()
    images = torch.rand(3, 3, 32, 32)
    on_object = Looking(masks[0]).train()
    on_background = Looking(1 - masks[0])
    high = bgbias.attention_scores(on_object, images, masks, recipe="imagenet")
    low = bgbias.attention_scores(on_background, images, masks, recipe="imagenet")
    coverage = masks[0].mean().item()
    assert (high > 0.9).all() and torch.allclose(
        low, torch.tensor(-coverage / (1 - coverage)).double()
    )
    assert on_object.training  # the caller's mode is restored


def test_attention_scores_check_shapes(model):
    images = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\) and \(B, 1, H, W\)"):
        bgbias.attention_scores(model, images, torch.ones(2, 32, 32))
    with pytest.raises(ValueError, match="do not match images"):
        bgbias.attention_scores(model, images, torch.ones(2, 1, 16, 16))
    with pytest.raises(ValueError, match="3 seeds for 2 images"):
        bgbias.attention_scores(model, images, torch.ones(2, 1, 32, 32), seed=[1, 2, 3])
