"""ivfpq re-ranks its codes' candidates with the exact vectors it keeps on disk, memory-mapped."""

import faiss
import numpy as np
import pytest

from bgbias.search.faiss_store import EXACT_FILES, recall_at_k
from bgbias.search.index import SearchIndex, write_index_files
from bgbias.search.rerank import Reranked
from bgbias.search.store import IndexFolderError


def clustered(n: int, dim: int = 32, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """(n, dim) unit rows: seeded centres plus noise, neighbours close enough that 4-byte codes
    confuse their order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    rows = centres[rng.integers(0, clusters, n)] + rng.normal(scale=0.4, size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def write(folder, data, rerank, max_memory=None):
    folder.mkdir()
    items = [{"id": str(i), "label": "x"} for i in range(len(data))]
    settings = {"index_type": "ivfpq", "rerank": rerank, "max_memory": max_memory}
    return write_index_files(folder, data, items, {"spec": "test"}, "ivfpq", settings=settings)


@pytest.fixture(scope="module")
def data():
    return clustered(5_000)


@pytest.fixture(scope="module")
def reranked(tmp_path_factory, data):
    """The folder of 5 k items in 4-byte codes (flat: 128 bytes an item), re-ranking 10x."""
    folder = tmp_path_factory.mktemp("rr") / "index"
    write(folder, data, 10, max_memory=100_000)
    return folder


def test_reranking_lifts_recall_above_the_target(tmp_path, data, reranked):
    codes_only = write(tmp_path / "codes", data, 0, max_memory=100_000)["index"]
    section = SearchIndex.load(reranked).manifest["index"]
    assert section["params"]["m"] == codes_only["params"]["m"] == 4
    assert section["bytes"] == codes_only["bytes"] <= 100_000  # the budget holds the codes
    assert section["exact_vectors_bytes"] >= 5_000 * 32 * 4  # the exact vectors: on disk
    assert codes_only["recall"]["recall_at_10"] < 0.8
    assert section["recall"]["recall_at_10"] >= 0.9
    assert section["recall"]["without_rerank"] < 0.8
    assert section["rerank"] == 10 and codes_only["rerank"] == 0
    assert not (tmp_path / "codes" / EXACT_FILES["full"]).exists()


def test_reported_recall_is_the_served_search(data, reranked):
    index = SearchIndex.load(reranked)
    store = index.store
    assert isinstance(store.indexes["full"], Reranked)
    served, _ = recall_at_k(store.indexes["full"], data)
    assert served == pytest.approx(index.manifest["index"]["recall"]["recall_at_10"], abs=1e-4)
    assert np.array_equal(store.embedding(7), data[7:8])  # the exact vector, not the codes'


def test_the_memory_mapped_file_is_what_is_searched(tmp_path, data):
    folder = tmp_path / "index"
    write(folder, data[:2000], 10)
    query = clustered(1, seed=5)
    stored = np.load(folder / EXACT_FILES["full"])
    _, before = SearchIndex.load(folder).search(query, 10)
    target = int(before[0, -1])  # a candidate the codes find, ranked last by the exact scores
    stored[target] = query[0]
    np.save(folder / EXACT_FILES["full"], stored)
    scores, after = SearchIndex.load(folder).search(query, 10)
    assert after[0, 0] == target and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_candidates_covering_everything_give_exact_search(tmp_path, data):
    small = data[:800]
    write(tmp_path / "index", small, 80)  # 80 x 10 candidates: every item
    store = SearchIndex.load(tmp_path / "index").store
    ivf = faiss.extract_index_ivf(store.indexes["full"].index)
    ivf.nprobe = ivf.nlist  # the codes return all 800, in their own approximate order
    queries = clustered(50, seed=3)
    scores, found = store.search({"full": queries}, 10)
    exact = faiss.IndexFlatIP(small.shape[1])
    exact.add(small)
    truth_scores, truth = exact.search(queries, 10)
    assert np.array_equal(found, truth)
    assert np.allclose(scores, truth_scores, atol=1e-5)


@pytest.mark.parametrize("damage", ["missing", "garbage", "other shape"])
def test_a_missing_or_damaged_vectors_file_is_one_line_naming_it(tmp_path, data, damage):
    folder = tmp_path / "index"
    write(folder, data[:1000], 10)
    path = folder / EXACT_FILES["full"]
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not an array at all")
    else:
        np.save(path, data[:999])
    with pytest.raises(IndexFolderError) as caught:
        SearchIndex.load(folder)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
