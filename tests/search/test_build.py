"""Building an index: same embeddings as evaluation, resumable, never half-visible."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from bgbias.adapters import load_embedder
from bgbias.cli import main
from bgbias.data.datasets import FolderDataset
from bgbias.data.transforms import PairedTransform
from bgbias.errors import OutputError
from bgbias.evaluation import embed
from bgbias.search.build import build_index
from bgbias.search.index import SearchIndex


class Interrupted(Exception):
    pass


def counting(embedder, stop_after_calls=None):
    """Counts the images ``embedder`` embeds; raises on call ``stop_after_calls + 1``."""
    inner = embedder.embed
    embedder.images = 0
    embedder.calls = 0

    def embed_(images):
        if stop_after_calls is not None and embedder.calls >= stop_after_calls:
            raise Interrupted
        embedder.calls += 1
        embedder.images += len(images)
        return inner(images)

    embedder.embed = embed_
    return embedder


def build(checkpoint, catalogue, out, embedder=None, **kwargs):
    model = embedder if embedder is not None else str(checkpoint)
    kwargs = {"device": "cpu", "progress": False, "chunk_size": 8} | kwargs
    return build_index(model, catalogue, out, **kwargs)


def test_index_holds_the_embeddings_evaluation_computes(built_index, catalogue, checkpoint):
    index = SearchIndex.load(built_index)
    embedder = load_embedder(str(checkpoint))
    dataset = FolderDataset.open(catalogue, "all", PairedTransform(embedder.recipe, False))
    expected = embed(embedder.module, dataset, progress=False).clean
    assert len(index) == len(dataset) == 20
    for sample, vector in zip(dataset.samples, expected, strict=True):
        stored = index.embedding(index.position(sample.id))[0]
        assert np.allclose(stored, vector.numpy(), atol=1e-5)


def test_items_thumbnails_and_provenance(built_index, checkpoint):
    index = SearchIndex.load(built_index)
    item = index.items[index.position("c1/003.png")]
    assert item["label"] == "c1" and item["path"].endswith("images/c1/003.png")
    thumb = Image.open(index.thumbnail_path(index.position("c1/003.png")))
    assert thumb.format == "JPEG" and max(thumb.size) <= 128
    manifest = index.manifest
    assert manifest["model"]["spec"] == str(checkpoint.resolve())
    assert manifest["model"]["sha256"] and manifest["model"]["recipe"]["crop"] == 64
    assert manifest["index"] == {"type": "flat", "exact": True, "params": {}, "recall": None}
    assert manifest["catalogue"]["layout"] == "dataset" and manifest["dim"] == 16
    assert not list(built_index.parent.glob(".shop-index.building*"))


def test_search_equals_exact_cosine_search(built_index):
    index = SearchIndex.load(built_index)
    stored = np.concatenate([index.embedding(p) for p in range(len(index))])
    queries = torch.randn(3, 16)
    scores, positions = index.search(queries, k=5)
    unit = torch.nn.functional.normalize(queries, dim=1).numpy()
    cosine = unit @ stored.T
    expected = np.argsort(-cosine, axis=1, kind="stable")[:, :5]
    assert np.array_equal(positions, expected)
    assert np.allclose(scores, np.take_along_axis(cosine, expected, axis=1), atol=1e-5)


def test_an_interrupted_build_resumes_and_never_loads_as_complete(catalogue, checkpoint, tmp_path):
    out = tmp_path / "idx"
    first = counting(load_embedder(str(checkpoint)), stop_after_calls=2)
    with pytest.raises(Interrupted):
        build(checkpoint, catalogue, out, first)
    assert not out.exists()
    with pytest.raises(Exception, match="index folder not found"):
        SearchIndex.load(out)
    assert len(list((tmp_path / ".idx.building" / "chunks").glob("chunk-*.npz"))) == 2
    second = counting(load_embedder(str(checkpoint)))
    build(checkpoint, catalogue, out, second)
    assert second.images == 4  # only the third chunk (20 images in chunks of 8)
    resumed = SearchIndex.load(out)
    build(checkpoint, catalogue, tmp_path / "straight")
    straight = SearchIndex.load(tmp_path / "straight")
    assert resumed.items == straight.items
    for p in range(len(resumed)):
        assert np.array_equal(resumed.embedding(p), straight.embedding(p))
    assert resumed.manifest["build"]["resumed_images"] == 16


def test_a_changed_catalogue_or_model_starts_over(catalogue, checkpoint, tmp_path):
    out = tmp_path / "idx"
    with pytest.raises(Interrupted):
        build(checkpoint, catalogue, out, counting(load_embedder(str(checkpoint)), 2))
    other = tmp_path / "other.ckpt"
    from tests.helpers import write_checkpoint

    write_checkpoint(other, seed=9)
    again = counting(load_embedder(str(other)))
    build(checkpoint, catalogue, out, again)
    assert again.images == 20


def test_an_interrupted_rebuild_keeps_the_old_index(built_index, catalogue, checkpoint, tmp_path):
    out = tmp_path / "idx"
    build(checkpoint, catalogue, out)
    before = SearchIndex.load(out).manifest["created"]
    with pytest.raises(Interrupted):
        build(checkpoint, catalogue, out, counting(load_embedder(str(checkpoint)), 1))
    assert SearchIndex.load(out).manifest["created"] == before


def test_unreadable_images_are_skipped_and_listed(tmp_path, checkpoint):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    data = (folder / "0.png").read_bytes()
    (folder / "3.png").write_bytes(data[: len(data) // 2])  # truncated
    manifest = build(checkpoint, folder, tmp_path / "idx")
    assert manifest["count"] == 3 and manifest["catalogue"]["listed"] == 4
    (skipped,) = manifest["catalogue"]["skipped"]
    assert skipped["id"] == "3.png" and "corrupt or truncated image" in skipped["error"]


def test_refuses_to_replace_a_folder_that_is_not_an_index(tmp_path, catalogue, checkpoint):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="not a bgbias index"):
        build(checkpoint, catalogue, tmp_path / "docs")
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_report_recall_against_exact_search(kind, tmp_path, checkpoint, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(100):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / kind
    argv = ["index", str(checkpoint), str(folder), "--out", str(out), "--index", kind]
    assert main([*argv, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    recall = manifest["index"]["recall"]
    assert manifest["index"]["type"] == kind and not manifest["index"]["exact"]
    assert recall["queries"] == 100 and 0.0 < recall["recall_at_10"] <= 1.0
    assert f"recall@10 {recall['recall_at_10']:.4f} against exact search" in printed
    index = SearchIndex.load(out)
    _, positions = index.search(np.concatenate([index.embedding(p) for p in range(5)]), k=1)
    assert positions[:, 0].tolist() == [0, 1, 2, 3, 4]  # each item finds itself
