"""The compressed ivfpq index: sized to its budget, recall reported, built by `bgbias index`
(re-ranking with exact vectors on disk by default)."""

import json

import numpy as np
import pytest
from PIL import Image

from bgbias.cli import main
from bgbias.errors import ConfigError
from bgbias.search.compressed import build_ivfpq, plan
from bgbias.search.faiss_store import recall_at_k
from bgbias.search.index import SearchIndex


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_ivfpq_fits_its_budget_and_reports_recall():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32))
    data = unit(centres[rng.integers(0, 20, 20_000)] + rng.normal(scale=0.3, size=(20_000, 32)))
    budget = 450_000  # flat: 2.56 MB; 8-byte codes and 8-byte ids: 418 KB with the centroids
    index, params = build_ivfpq(data, budget, recall_at_k)
    import faiss

    size = faiss.serialize_index(index).nbytes
    assert params["estimated_bytes"] <= budget and size <= budget * 1.05
    assert params["m"] == 8 and 0.3 < params["tuning_recall_at_10"] <= 1.0
    bigger, more = build_ivfpq(data, 4 * budget, recall_at_k)
    assert more["m"] > params["m"] and more["tuning_recall_at_10"] > params["tuning_recall_at_10"]


def test_ivfpq_budget_too_small_is_one_line():
    with pytest.raises(ConfigError, match="--max-memory 1000 bytes"):
        plan(100_000, 128, 1000)
    assert plan(20, 64, None)["m"] == 1  # a tiny catalogue: the smallest codes, not an error


def test_bgbias_index_builds_ivfpq_within_max_memory(tmp_path, checkpoint, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(100):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "compressed"
    argv = ["index", str(checkpoint), str(folder), "--out", str(out), "--index", "ivfpq"]
    assert main([*argv, "--max-memory", "16KB", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    section = json.loads((out / "manifest.json").read_text())["index"]
    assert section["type"] == "ivfpq" and section["params"]["max_memory"] == 16 * 1024
    assert section["bytes"] == (out / "index.faiss").stat().st_size
    assert 0.0 < section["recall"]["recall_at_10"] <= 1.0
    assert f"{section['bytes'] / 2**20:.1f} MB" in printed and "recall@10" in printed
    assert section["rerank"] == 10 and "of exact vectors on disk" in printed
    assert section["exact_vectors_bytes"] == (out / "vectors.npy").stat().st_size
    assert len(SearchIndex.load(out).search(np.ones((1, SearchIndex.load(out).dim)), 5)[1][0]) == 5
    assert main([*argv, "--max-memory", "1KB", "--device", "cpu"]) != 0
    assert "--max-memory 1024 bytes" in capsys.readouterr().err
