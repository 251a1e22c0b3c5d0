import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from bgbias.metrics import (
    DISTANCES,
    MetricsError,
    distance_of,
    nearest_neighbors,
    retrieval_metrics,
)

PML_NAMES = {
    "map_at_r": "mean_average_precision_at_r",
    "precision_at_1": "precision_at_1",
    "r_precision": "r_precision",
}


def pml(embeddings, labels):
    calculator = AccuracyCalculator(
        include=tuple(PML_NAMES.values()), k="max_bin_count", device=torch.device("cpu")
    )
    return calculator.get_accuracy(torch.as_tensor(embeddings), torch.as_tensor(labels))


def clustered(seed, sizes, dim, spread):
    """Class centres plus noise: metrics land anywhere in [0, 1] depending on ``spread``."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.normal(size=(len(sizes), dim))
    embeddings = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    order = rng.permutation(len(labels))
    return torch.tensor(embeddings[order], dtype=torch.float32), labels[order]


def assert_equal_to_pml(embeddings, labels, backend):
    ours = retrieval_metrics(embeddings, labels, backend=backend)
    reference = pml(embeddings, labels)
    for name, pml_name in PML_NAMES.items():
        assert ours[name] == pytest.approx(reference[pml_name], abs=1e-6), name
        assert 0.0 <= ours[name] <= 1.0


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(2, 100), min_size=2, max_size=25),
    dim=st.integers(2, 512),
    spread=st.sampled_from([0.3, 1.0, 3.0]),
)
@example(seed=1, sizes=[2, 2, 38, 2, 84, 100], dim=2, spread=3.0)  # float32 near-ties in 2-D
def test_equals_pytorch_metric_learning(seed, sizes, dim, spread):
    assert_equal_to_pml(*clustered(seed, sizes, dim, spread), backend="faiss")


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(2, 100), min_size=2, max_size=15),
    dim=st.integers(8, 512),  # without faiss, float32 near-ties (common in 2-D) may round apart
    spread=st.sampled_from([0.3, 1.0, 3.0]),
)
def test_torch_fallback_equals_pytorch_metric_learning(seed, sizes, dim, spread):
    assert_equal_to_pml(*clustered(seed, sizes, dim, spread), backend="torch")


def test_euclidean_equals_pml_on_unnormalised_embeddings():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), 5)
    embeddings = torch.tensor(
        rng.normal(size=(150, 16)) * rng.uniform(0.1, 3.0, size=(150, 1)), dtype=torch.float32
    )
    ours = retrieval_metrics(embeddings, labels, distance="euclidean")
    reference = pml(embeddings, labels)  # PML's default k-NN is faiss L2
    for name, pml_name in PML_NAMES.items():
        assert ours[name] == pytest.approx(reference[pml_name], abs=1e-6)


def test_hand_computed_example():
    # class A = items 0, 1, 2; class B = items 3, 4 (unit vectors, cosine similarity)
    points = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
    labels = [0, 0, 0, 1, 1]
    neighbours = nearest_neighbors(points, 2)
    assert neighbours.tolist() == [[1, 3], [3, 0], [3, 1], [1, 2], [2, 3]]
    # R = 2, 2, 2, 1, 1; hits in the top R: [A, B], [B, A], [B, A], [A], [A]
    m = retrieval_metrics(points, labels)
    assert m["map_at_r"] == pytest.approx(np.mean([1 / 2, 1 / 4, 1 / 4, 0, 0]))
    assert m["r_precision"] == pytest.approx(np.mean([1 / 2, 1 / 2, 1 / 2, 0, 0]))
    assert m["precision_at_1"] == pytest.approx(np.mean([1, 0, 0, 0, 0]))


def test_classes_of_one_are_left_out_like_pml():
    embeddings, labels = clustered(1, [5, 5, 1, 1, 4], 8, 0.5)
    ours = retrieval_metrics(embeddings, labels)
    reference = pml(embeddings, labels)
    for name, pml_name in PML_NAMES.items():
        assert ours[name] == pytest.approx(reference[pml_name], abs=1e-6)
    alone = retrieval_metrics(torch.randn(3, 4), [0, 1, 2])
    assert all(math.isnan(v) for v in alone.values())


def test_duplicates_rank_by_index():
    embeddings = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]])
    assert nearest_neighbors(embeddings, 3)[2].tolist() == [0, 1, 3]
    assert nearest_neighbors(embeddings, 3, backend="torch")[2].tolist() == [0, 1, 3]
    # and so the metrics do not depend on the order the library happens to return
    labels = [0, 1, 0, 1, 0]
    assert retrieval_metrics(embeddings, labels) == retrieval_metrics(
        embeddings, labels, backend="torch"
    )


def test_blocked_torch_path_equals_faiss():
    embeddings, labels = clustered(3, [7] * 40, 32, 1.0)
    a = retrieval_metrics(embeddings, labels, backend="faiss")
    b = retrieval_metrics(embeddings, labels, backend="torch", block_size=17)
    assert a == pytest.approx(b, abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_search_equals_faiss():
    embeddings, labels = clustered(4, [6] * 50, 64, 1.0)
    a = retrieval_metrics(embeddings, labels, backend="faiss")
    b = retrieval_metrics(embeddings, labels, device="cuda", block_size=33)
    assert a == pytest.approx(b, abs=1e-12)


def test_nan_embedding_names_the_first_bad_item():
    embeddings = torch.randn(10, 4)
    embeddings[6, 2] = float("nan")
    embeddings[8, 0] = float("inf")
    with pytest.raises(MetricsError, match=r"item 6 is not finite .* 2 bad item"):
        retrieval_metrics(embeddings, list(range(5)) * 2)


def test_shape_errors():
    with pytest.raises(MetricsError, match="labels must be"):
        retrieval_metrics(torch.randn(4, 2), [0, 1, 0])
    with pytest.raises(MetricsError, match="embeddings must be"):
        retrieval_metrics(torch.randn(4), [0, 1, 0, 1])


def test_accepts_numpy():
    embeddings, labels = clustered(0, [3, 3, 3], 5, 0.5)
    assert retrieval_metrics(embeddings.numpy(), labels) == retrieval_metrics(embeddings, labels)


def test_each_loss_is_named_by_the_distance_it_compares_by():
    from bgbias.losses import build_loss

    named = {
        loss: distance_of(build_loss(loss, {}, num_classes=3, embedding_size=4).distance)
        for loss in ("contrastive", "triplet", "multi_similarity", "arcface", "normalized_softmax")
    }
    assert named == {
        "contrastive": "euclidean",
        "triplet": "euclidean",
        "multi_similarity": "cosine",
        "arcface": "cosine",
        "normalized_softmax": "dot",  # a dot product, not a euclidean distance
    }
    assert set(named.values()) == set(DISTANCES)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_dot_ranks_by_inner_product_cosine_by_angle(backend):
    # from item 0: item 1 points the same way but is short, item 2 is 45 degrees off but long
    embeddings = torch.tensor([[1.0, 0.0], [0.5, 0.0], [2.0, 2.0]])
    by = {d: nearest_neighbors(embeddings, 2, d, backend)[0].tolist() for d in DISTANCES}
    assert by == {"cosine": [1, 2], "dot": [2, 1], "euclidean": [1, 2]}
    with pytest.raises(ValueError, match="distance must be one of cosine, dot, euclidean"):
        nearest_neighbors(embeddings, 2, "manhattan", backend)
