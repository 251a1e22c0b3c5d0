"""Instance and asymmetric metrics on hand-built embeddings."""

import math

import numpy as np
import pytest
import torch

from bgbias.auditing.metrics import (
    area_quartiles,
    asymmetric_metrics,
    bootstrap_interval,
    instance_metrics,
    instance_ranks,
    mean_and_std,
    product_hits,
)
from bgbias.auditing.score import Embedded, score_model
from bgbias.metrics import retrieval_metrics

ORIGINALS = torch.eye(4)  # image i's original embedding is e_i


def test_instance_ranks_and_cosines_on_hand_built_embeddings():
    variants = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],  # image 0: exactly its original -> rank 1, cosine 1
            [0.0, 0.6, 0.8, 0.0],  # image 1: e2 is closer (0.8 > 0.6) -> rank 2, cosine 0.6
            [0.0, 0.0, 0.0, 1.0],  # image 2: cosine 0 with e2, tied with e0, e1 -> rank 4
            [0.1, 0.1, 0.1, 0.9],  # image 3: its own is closest -> rank 1
        ]
    )
    ranks, cosines = instance_ranks(variants, ORIGINALS, torch.arange(4))
    assert ranks.tolist() == [1, 2, 4, 1]
    expected_cos = [1.0, 0.6, 0.0, 0.9 / math.sqrt(0.84)]
    assert cosines.tolist() == pytest.approx(expected_cos, abs=1e-6)
    metrics = instance_metrics(ranks, cosines)
    assert metrics["hit_at_1"] == 0.5 and metrics["mean_rank"] == 2.0
    assert metrics["cosine_mean"] == pytest.approx(np.mean(expected_cos), abs=1e-6)


def test_instance_ranks_of_a_subset_of_images():
    variants = torch.tensor([[0.0, 0.0, 1.0, 0.1]])  # a variant of image 3 only
    ranks, cosines = instance_ranks(variants, ORIGINALS, torch.tensor([3]))
    assert ranks.tolist() == [2] and cosines.item() == pytest.approx(0.1 / math.sqrt(1.01))


def test_asymmetric_metrics_leave_out_the_querys_own_original():
    labels = np.array([0, 0, 1, 1])
    # every variant equals its own original: only the own original (left out) would match
    # exactly, the same-class image is orthogonal, so the result depends on the gallery order
    variants = torch.tensor(
        [[0.9, 0.1, 0.4, 0.0], [0.2, 0.9, 0.0, 0.5], [0.0, 0.3, 0.9, 0.1], [0.5, 0.0, 0.1, 0.9]]
    )
    result = asymmetric_metrics(variants, ORIGINALS, labels, torch.arange(4))
    # query 0 (class 0): gallery e1 (0.1), e2 (0.4), e3 (0.0) -> e2 first: wrong
    # query 1: e0 0.2, e2 0.0, e3 0.5 -> e3 wrong; query 2: e0 0, e1 .3, e3 .1 -> e1 wrong
    # query 3: e0 .5, e1 0, e2 .1 -> e0 wrong; R = 1 everywhere
    assert result == {"map_at_r": 0.0, "precision_at_1": 0.0, "r_precision": 0.0}
    right = torch.tensor(
        [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0, 0, 0, 1.0], [0, 0, 1.0, 0]]
    )
    assert asymmetric_metrics(right, ORIGINALS, labels, torch.arange(4))["map_at_r"] == 1.0


def test_asymmetric_equals_symmetric_on_the_originals():
    torch.manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(30, 8), dim=1)
    labels = np.repeat(np.arange(6), 5)
    mine = asymmetric_metrics(embeddings, embeddings, labels, torch.arange(30))
    pml_like = retrieval_metrics(embeddings, labels)
    for name, value in pml_like.items():
        assert mine[name] == pytest.approx(value, abs=1e-9)


def test_mean_and_std_keep_the_nested_paths():
    mean, std = mean_and_std([{"instance": {"hit_at_1": 0.5}}, {"instance": {"hit_at_1": 1.0}}])
    assert mean == {"instance": {"hit_at_1": 0.75}}
    assert std["instance"]["hit_at_1"] == pytest.approx(np.std([0.5, 1.0], ddof=1))


def test_area_quartiles_split_images_by_object_size():
    groups, names = area_quartiles(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]))
    assert groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and len(names) == 4
    assert names[0].startswith("Q1 (10-")


SIBLINGS = np.array([0, 0, 1, 1])  # images 0, 1: two views of one product; 2, 3: another's
SIBLING_VARIANTS = torch.tensor(
    [
        [0.2, 1.0, 0.0, 0.0],  # image 0: its sibling view (image 1) first: a product hit only
        [0.0, 1.0, 0.0, 0.0],  # image 1: its own original first: both
        [0.0, 0.0, 0.0, 1.0],  # image 2: its sibling (image 3) first: a product hit only
        [1.0, 0.0, 0.0, 0.1],  # image 3: another product's view (image 0) first: neither
    ]
)


def test_product_hits_count_a_sibling_view_that_exact_hit_at_1_does_not():
    rows = torch.arange(4)
    ranks, cosines = instance_ranks(SIBLING_VARIANTS, ORIGINALS, rows)
    product = product_hits(SIBLING_VARIANTS, ORIGINALS, rows, SIBLINGS)
    assert (ranks == 1).tolist() == [False, True, False, False]
    assert product.tolist() == [True, True, True, False]
    metrics = instance_metrics(ranks, cosines, product)
    assert metrics["hit_at_1"] == 0.25 and metrics["product_hit_at_1"] == 0.75
    # a tie between the best same-label and the best other-label original counts against it
    tied = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    assert product_hits(tied, ORIGINALS, torch.tensor([0]), SIBLINGS).tolist() == [False]


def test_score_model_reports_product_hit_at_1_its_interval_and_chance():
    embedded = Embedded(
        {"original": ORIGINALS, "only_bg": SIBLING_VARIANTS},
        {"original": torch.arange(4), "only_bg": torch.arange(4)},
    )
    result = score_model(
        embedded, SIBLINGS, ["a", "b"], list("wxyz"), np.full(4, 0.3), [], worst=2, seed=3
    )
    instance = result["conditions"]["only_bg"]["instance"]
    assert instance["hit_at_1"] == 0.25 and instance["product_hit_at_1"] == 0.75
    assert instance["product_chance"] == 0.5  # half the originals share any query's label
    lo, hi = instance["hit_at_1_ci"]
    assert 0.0 <= lo <= 0.25 <= hi <= 1.0 and hi > lo
    lo, hi = instance["product_hit_at_1_ci"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0 and hi > lo
    # without labels: no product hit@1, still an interval
    plain = score_model(embedded, None, None, list("wxyz"), np.full(4, 0.3), [], worst=2)
    instance = plain["conditions"]["only_bg"]["instance"]
    assert "product_hit_at_1" not in instance and "product_chance" not in instance
    assert len(instance["hit_at_1_ci"]) == 2


def test_bootstrap_interval_is_seeded_leaves_out_nan_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    few = (rng.random(20) < 0.5).astype(float)
    many = (rng.random(2000) < 0.5).astype(float)
    assert bootstrap_interval(few, seed=1) == bootstrap_interval(few, seed=1)
    lo, hi = bootstrap_interval(few, seed=1)
    assert lo <= few.mean() <= hi
    lo_many, hi_many = bootstrap_interval(many, seed=1)
    assert lo_many <= many.mean() <= hi_many and hi_many - lo_many < (hi - lo) / 5
    # about 1.96 binomial standard errors each side
    assert (hi_many - lo_many) / 2 == pytest.approx(1.96 * np.sqrt(0.25 / 2000), rel=0.15)
    with_gaps = np.concatenate([few, [np.nan] * 5])
    assert bootstrap_interval(with_gaps, seed=1) == bootstrap_interval(few, seed=1)
    assert bootstrap_interval(np.ones(7)) == [1.0, 1.0]
    assert bootstrap_interval(np.array([np.nan])) is None


def test_bootstrap_chunks_give_the_same_interval_as_one_draw(monkeypatch):
    many = (np.random.default_rng(0).random(2000) < 0.5).astype(float)
    whole = bootstrap_interval(many, seed=2)
    monkeypatch.setattr("bgbias.auditing.metrics.DRAWS_PER_CHUNK", 50_000)  # 25 per chunk
    assert bootstrap_interval(many, seed=2) == pytest.approx(whole, abs=0.005)
