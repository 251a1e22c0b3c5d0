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
    section = {k: manifest["index"][k] for k in ("type", "exact", "params", "recall", "fields")}
    expected = {"type": "flat", "exact": True, "params": {}, "recall": None, "fields": ["full"]}
    assert section == expected
    assert manifest["index"]["backend"] == "faiss" and manifest["foreground"] is None
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
    # calls: the model's probe image (see bgbias.search.index.model_probe), then batches
    first = counting(load_embedder(str(checkpoint)), stop_after_calls=3)
    with pytest.raises(Interrupted):
        build(checkpoint, catalogue, out, first)
    assert not out.exists()
    with pytest.raises(Exception, match="index folder not found"):
        SearchIndex.load(out)
    assert len(list((tmp_path / ".idx.building" / "chunks").glob("chunk-*.npz"))) == 2
    second = counting(load_embedder(str(checkpoint)))
    build(checkpoint, catalogue, out, second)
    assert second.images == 1 + 4  # the probe and only the third chunk (20 images, chunks of 8)
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
        build(checkpoint, catalogue, out, counting(load_embedder(str(checkpoint)), 3))
    other = tmp_path / "other.ckpt"
    from tests.helpers import write_checkpoint

    write_checkpoint(other, seed=9)
    again = counting(load_embedder(str(other)))
    build(checkpoint, catalogue, out, again)
    assert again.images == 1 + 20  # the probe, then every image again


def test_an_interrupted_rebuild_keeps_the_old_index(built_index, catalogue, checkpoint, tmp_path):
    out = tmp_path / "idx"
    build(checkpoint, catalogue, out)
    before = SearchIndex.load(out).manifest["created"]
    with pytest.raises(Interrupted):
        build(checkpoint, catalogue, out, counting(load_embedder(str(checkpoint)), 2))
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
    with pytest.raises(OutputError, match="docs: holds files bgbias did not write"):
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
    assert manifest["index"]["distance"] == "cosine"  # unit rows, inner product
    assert recall["queries"] == 100 and 0.0 < recall["recall_at_10"] <= 1.0
    assert f"recall@10 {recall['recall_at_10']:.4f} against exact search" in printed
    index = SearchIndex.load(out)
    _, positions = index.search(np.concatenate([index.embedding(p) for p in range(5)]), k=1)
    assert positions[:, 0].tolist() == [0, 1, 2, 3, 4]  # each item finds itself


FACTORY = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())
"""


def model_forms(checkpoint, folder) -> dict[str, list[str]]:
    """`bgbias index` arguments naming a model in each form the adapter layer reads offline."""
    from bgbias.backbones.small_cnn import SmallCNN

    assert main(["export", str(checkpoint), str(folder / "model.onnx"), "-q"]) == 0
    assert main(["export", str(checkpoint), str(folder / "model.pt"), "-q"]) == 0
    torch.manual_seed(4)
    torch.save(SmallCNN().state_dict(), folder / "small.pt")
    (folder / "factory.py").write_text(FACTORY)
    return {
        "checkpoint": [str(checkpoint)],
        "onnx": [f"onnx:{folder / 'model.onnx'}"],
        "torchscript": [f"torchscript:{folder / 'model.pt'}"],
        "backbone": ["small_cnn", "--weights", str(folder / "small.pt")],
        "python": [f"python:{folder / 'factory.py'}:make", "--input-size", "48"],
    }


def own_scores(service, catalogue, ids) -> dict[str, float]:
    """Each photo's similarity to its own catalogue entry, searched by upload."""
    scores = {}
    for item_id in ids:
        data = (catalogue / "images" / item_id).read_bytes()
        results = service.search_photo(data, k=20)["results"]
        scores[item_id] = next(r["score"] for r in results if r["id"] == item_id)
    return scores


def test_index_and_serve_accept_every_model_form(
    tmp_path, catalogue, checkpoint, remover, monkeypatch
):
    from bgbias.search.service import SearchService, ServeOptions

    forms = model_forms(checkpoint, tmp_path)
    for form, args in forms.items():
        out = tmp_path / f"index-{form}"
        assert (
            main(["index", *args, str(catalogue), "--out", str(out), "-q", "--device", "cpu"]) == 0
        )
    monkeypatch.chdir(tmp_path.parent)  # served from elsewhere: files and options were recorded
    for form in forms:
        index = SearchIndex.load(tmp_path / f"index-{form}")
        service = SearchService([index], ServeOptions(device="cpu"), remover=remover)
        scores = own_scores(service, catalogue, ["c0/001.png", "c3/004.png"])
        assert scores == pytest.approx({k: 1.0 for k in scores}, abs=1e-4), form
    python = SearchIndex.load(tmp_path / "index-python")
    assert python.manifest["model"]["options"]["input_size"] == 48
    assert python.load_embedder().recipe.crop == 48


def test_an_onnx_export_searches_like_its_checkpoint(tmp_path, catalogue, checkpoint, remover):
    from bgbias.search.service import SearchService, ServeOptions

    onnx = tmp_path / "model.onnx"
    assert main(["export", str(checkpoint), str(onnx), "-q"]) == 0
    build(checkpoint, catalogue, tmp_path / "from-ckpt")
    build(f"onnx:{onnx}", catalogue, tmp_path / "from-onnx")
    indexes = [SearchIndex.load(tmp_path / name) for name in ("from-ckpt", "from-onnx")]
    assert indexes[1].manifest["model"]["form"] == "onnx"
    service = SearchService(indexes, ServeOptions(device="cpu"), remover=remover)
    for item_id in ("c0/002.png", "c2/000.png", "c3/001.png"):
        data = (catalogue / "images" / item_id).read_bytes()
        answers = [service.search_photo(data, index=i.name, k=20)["results"] for i in indexes]
        assert answers[1][0]["id"] == answers[0][0]["id"] == item_id
        # every item's score equal; the test model's near-ties (0.9992 vs 0.9991) may swap ranks
        scores = [{r["id"]: r["score"] for r in answer} for answer in answers]
        assert scores[1] == pytest.approx(scores[0], abs=1e-4)


def test_an_untrained_model_is_refused_once_its_random_weights_are_redrawn(tmp_path, catalogue):
    from bgbias.errors import ConfigError

    out = tmp_path / "random"
    assert main(["index", "small_cnn", "--untrained", str(catalogue), "--out", str(out), "-q"]) == 0
    with pytest.raises(ConfigError, match="no longer gives the embeddings the index was built"):
        SearchIndex.load(out).load_embedder()


def test_index_into_a_web_project_with_a_manifest_is_refused(
    tmp_path, catalogue, checkpoint, capsys
):
    project = tmp_path / "shop-site"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.js").write_text("console.log('shop')")
    (project / "manifest.json").write_text('{"name": "shop", "start_url": "/"}')
    code = main(["index", str(checkpoint), str(catalogue), "--out", str(project), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith(f"bgbias: error: {project}: holds files bgbias did not")
    assert (project / "src" / "app.js").read_text() == "console.log('shop')"
    assert json.loads((project / "manifest.json").read_text())["name"] == "shop"


def test_a_rebuild_keeps_files_the_user_added_to_the_index_folder(tmp_path, catalogue, checkpoint):
    out = tmp_path / "idx"
    build(checkpoint, catalogue, out)
    (out / "NOTES.md").write_text("built for the shop demo")
    build(checkpoint, catalogue, out, chunk_size=4)
    assert (out / "NOTES.md").read_text() == "built for the shop demo"
    assert SearchIndex.load(out).manifest["count"] == 20
