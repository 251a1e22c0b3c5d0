"""Fusion rules, at search time (faiss store) and as an evaluation protocol, without a model."""

import numpy as np
import pytest
import torch

from bgbias.errors import ConfigError
from bgbias.metrics import retrieval_metrics
from bgbias.search.faiss_store import FaissStore
from bgbias.search.fused_eval import fused_retrieval_metrics
from bgbias.search.fusion import RRF_K, Fusion, parse_fusion


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("full", Fusion("full")),
        ("foreground", Fusion("foreground")),
        ("rrf", Fusion("rrf")),
        ("weighted:0.25", Fusion("weighted", 0.25)),
        ("weighted:1", Fusion("weighted", 1.0)),
    ],
)
def test_fusion_values_parse(text, expected):
    assert parse_fusion(text) == expected


@pytest.mark.parametrize("text", ["", "mean", "weighted", "weighted:1.5", "weighted:x", "rrf:3"])
def test_bad_fusion_values_name_the_option(text):
    with pytest.raises(ConfigError, match="--fusion"):
        parse_fusion(text)


def test_store_fusion_ranks_as_the_rules_say(tmp_path):
    rng = np.random.default_rng(0)
    full, fore = unit(rng.normal(size=(50, 8))), unit(rng.normal(size=(50, 8)))
    items = [{"id": str(i)} for i in range(50)]
    section = FaissStore.write(tmp_path, {"full": full, "foreground": fore}, items, {})
    store = FaissStore.open(tmp_path, section)
    queries = {"full": unit(rng.normal(size=(3, 8))), "foreground": unit(rng.normal(size=(3, 8)))}
    sim_full, sim_fore = queries["full"] @ full.T, queries["foreground"] @ fore.T

    _, found = store.search(queries, 5, "weighted:0.3")
    weighted = 0.3 * sim_full + 0.7 * sim_fore
    # every item is within the 4k candidates of each field? not necessarily: compare with the
    # rule restricted to the candidates, as the engine computes it
    for row in range(3):
        top_full = set(np.argsort(-sim_full[row])[:20])
        top_fore = set(np.argsort(-sim_fore[row])[:20])
        score = {
            i: (0.3 * sim_full[row, i] if i in top_full else 0.0)
            + (0.7 * sim_fore[row, i] if i in top_fore else 0.0)
            for i in top_full | top_fore
        }
        expected = sorted(score, key=lambda i: -score[i])[:5]
        assert found[row].tolist() == expected
        assert set(found[row]) <= set(np.argsort(-weighted[row])[:20]) | top_full | top_fore

    _, found = store.search(queries, 5, "rrf")
    for row in range(3):
        rank_full = {i: r for r, i in enumerate(np.argsort(-sim_full[row])[:20])}
        rank_fore = {i: r for r, i in enumerate(np.argsort(-sim_fore[row])[:20])}
        score = {
            i: sum(1 / (RRF_K + ranks[i] + 1) for ranks in (rank_full, rank_fore) if i in ranks)
            for i in set(rank_full) | set(rank_fore)
        }
        assert found[row].tolist() == sorted(score, key=lambda i: (-score[i], i))[:5]

    _, found = store.search(queries, 5, "foreground")
    assert found.tolist() == np.argsort(-sim_fore, axis=1)[:, :5].tolist()


def test_a_fusion_needs_the_foreground_vectors(tmp_path):
    vectors = unit(np.random.default_rng(0).normal(size=(10, 4)))
    section = FaissStore.write(tmp_path, {"full": vectors}, [{}] * 10, {})
    store = FaissStore.open(tmp_path, section)
    with pytest.raises(ConfigError, match="--foreground"):
        store.search({"full": vectors[:1], "foreground": vectors[:1]}, 3, "rrf")


def test_fused_evaluation_metrics():
    rng = np.random.default_rng(0)
    labels = torch.arange(30) // 5
    centres = rng.normal(size=(6, 16))
    full = unit(centres[labels] + rng.normal(scale=1.5, size=(30, 16)))
    fore = unit(centres[labels] + rng.normal(scale=1.0, size=(30, 16)))
    joined = torch.from_numpy(np.concatenate([full, fore], axis=1))
    assert fused_retrieval_metrics(joined, labels, Fusion("full")) == retrieval_metrics(
        torch.from_numpy(full), labels
    )
    for weight, alone in ((1.0, full), (0.0, fore)):
        got = fused_retrieval_metrics(joined, labels, Fusion("weighted", weight))
        assert got == pytest.approx(retrieval_metrics(torch.from_numpy(alone), labels))
    # reciprocal rank fusion, by brute force: each other item's fused score per query
    rrf = fused_retrieval_metrics(joined, labels, Fusion("rrf"))
    fused = np.zeros((30, 30))
    for vectors in (full, fore):
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        for q in range(30):
            for rank, item in enumerate(np.argsort(-sims[q], kind="stable")):
                fused[q, item] += 1 / (RRF_K + rank + 1)
    np.fill_diagonal(fused, -np.inf)
    precision_at_1 = np.mean(
        [labels[int(np.argmax(fused[q]))] == labels[q] for q in range(30)], dtype=float
    )
    assert rrf["precision_at_1"] == pytest.approx(precision_at_1)
    assert 0 < rrf["map_at_r"] <= 1
