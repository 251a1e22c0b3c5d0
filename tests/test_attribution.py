import math

import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance

from bgbias.attribution import (
    attention_score,
    draw_noise,
    frozen,
    normalise,
    reference_embedding,
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
