"""The Milvus store against the real Milvus Lite (never a mock): the same catalogue in Milvus and
in faiss gives the same results under every fusion rule; `bgbias serve` over a Milvus index
answers /search with the fusion switch; bad input fails in one line and leaves no index that
looks complete."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from bgbias.cli import main  # noqa: E402
from bgbias.errors import BgbiasError, ConfigError  # noqa: E402
from bgbias.search.build import build_index  # noqa: E402
from bgbias.search.index import SearchIndex  # noqa: E402
from bgbias.search.milvus_store import MilvusError, connect  # noqa: E402
from bgbias.search.store import IndexFolderError  # noqa: E402

FUSIONS = ["full", "foreground", "rrf", "weighted:0.5", "weighted:0.8"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory, catalogue, checkpoint, remover):
    """The catalogue indexed twice with full and foreground vectors: Milvus Lite and faiss."""
    root = tmp_path_factory.mktemp("milvus")
    common = {"device": "cpu", "progress": False, "chunk_size": 8, "foreground": remover}
    uri = str(root / "store.db")
    build_index(str(checkpoint), catalogue, root / "shop-milvus", milvus=uri, **common)
    build_index(str(checkpoint), catalogue, root / "shop-faiss", **common)
    return root / "shop-milvus", root / "shop-faiss", uri


def test_milvus_and_faiss_flat_return_the_same_top10_under_every_fusion(pair):
    milvus, faiss_index = SearchIndex.load(pair[0]), SearchIndex.load(pair[1])
    manifest = json.loads((pair[0] / "manifest.json").read_text())
    assert manifest["index"]["backend"] == "milvus" and not (pair[0] / "index.faiss").exists()
    assert manifest["index"]["fields"] == ["full", "foreground"] == list(milvus.fields)
    assert manifest["foreground"]["mask_model"] == "test-masker"
    assert len(milvus) == len(faiss_index) == 20 and milvus.items == faiss_index.items
    queries = {
        field: np.concatenate([faiss_index.embedding(p, field) for p in range(len(faiss_index))])
        for field in ("full", "foreground")
    }
    stored = np.concatenate([milvus.embedding(p, "foreground") for p in range(20)])
    np.testing.assert_allclose(stored, queries["foreground"], atol=1e-6)
    for fusion in FUSIONS:
        m_scores, m_found = milvus.search(queries, 10, fusion)
        f_scores, f_found = faiss_index.search(queries, 10, fusion)
        assert m_found.tolist() == f_found.tolist(), fusion
        np.testing.assert_allclose(m_scores, f_scores, atol=1e-5)
    # the rules differ: a foreground ranking is not the full one
    assert (
        milvus.search(queries, 10, "foreground")[1].tolist()
        != milvus.search(queries, 10, "full")[1].tolist()
    )


def test_the_collection_holds_id_label_and_thumbnail(pair):
    section = json.loads((pair[0] / "manifest.json").read_text())["index"]
    client = connect(section["uri"])
    (row,) = client.get(section["collection"], ids=[3], output_fields=["id", "label", "thumbnail"])
    items = json.loads((pair[0] / "items.json").read_text())
    assert (row["id"], row["label"]) == (items[3]["id"], items[3]["label"])
    import base64

    thumb = (pair[0] / "thumbs" / items[3]["thumb"]).read_bytes()
    assert base64.b64decode(row["thumbnail"]) == thumb


def test_serve_over_milvus_answers_search_with_the_fusion_switch(pair, remover, catalogue):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bgbias.search.server import create_app
    from bgbias.search.service import SearchService, ServeOptions

    service = SearchService([SearchIndex.load(pair[0])], ServeOptions(device="cpu"), remover)
    client = TestClient(create_app(service))
    assert client.get("/health").json()["indexes"][0]["backend"] == "milvus"
    photo = (catalogue / "images" / "c1/003.png").read_bytes()
    answers = {}
    for fusion in ["full", "foreground", "rrf", "weighted:0.5"]:
        reply = client.post(
            "/search", params={"k": 5, "fusion": fusion}, files={"image": ("q.png", photo)}
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["query"]["fusion"] == fusion and len(body["results"]) == 5
        answers[fusion] = [r["id"] for r in body["results"]]
    assert answers["full"][0] == "c1/003.png"  # the catalogue's own photo comes first
    assert answers["foreground"] != answers["full"] or answers["rrf"] != answers["full"]
    kept = {"fusion": "rrf", "exclude_self": "false"}
    found = client.post("/search", params=kept, data={"item": "c2/001.png"})
    assert found.status_code == 200 and found.json()["results"][0]["id"] == "c2/001.png"
    others = client.post("/search", params={"fusion": "rrf"}, data={"item": "c2/001.png"})
    assert "c2/001.png" not in [r["id"] for r in others.json()["results"]]
    bad = client.post("/search", params={"fusion": "mean"}, files={"image": ("q.png", photo)})
    assert bad.status_code == 400 and "--fusion 'mean'" in bad.json()["detail"]


def test_a_fusion_over_an_index_without_foreground_vectors_is_a_400(built_index, remover):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bgbias.search.server import create_app
    from bgbias.search.service import SearchService, ServeOptions

    service = SearchService([SearchIndex.load(built_index)], ServeOptions(device="cpu"), remover)
    reply = TestClient(create_app(service)).post(
        "/search", params={"fusion": "rrf"}, data={"item": "c2/001.png"}
    )
    assert reply.status_code == 400 and "--foreground" in reply.json()["detail"]


def test_an_unreachable_milvus_is_one_line_and_keeps_the_old_index(
    pair, tmp_path, catalogue, checkpoint, capsys
):
    out = tmp_path / "index"
    argv = ["index", str(checkpoint), str(catalogue), "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--milvus", "http://127.0.0.1:9"]) != 0
    error = capsys.readouterr().err.strip()
    assert "http://127.0.0.1:9: cannot reach Milvus" in error and "\n" not in error
    assert not out.exists() and not list(tmp_path.glob(".index*"))
    assert main([*argv, "--milvus", str(tmp_path / "store.txt")]) != 0
    assert "ending in .db" in capsys.readouterr().err


def test_a_collection_of_another_dimension_is_refused_in_one_line(pair, tmp_path):
    from pymilvus import DataType, MilvusClient

    manifest = json.loads((pair[0] / "manifest.json").read_text())
    folder = tmp_path / "copy"
    folder.mkdir()
    name = manifest["index"]["collection"] + "_other"
    (folder / "items.json").write_bytes((pair[0] / "items.json").read_bytes())
    manifest["index"]["collection"] = name
    (folder / "manifest.json").write_text(json.dumps(manifest))
    client = connect(manifest["index"]["uri"])
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("position", DataType.INT64, is_primary=True)
    for field in ("full", "foreground"):
        schema.add_field(field, DataType.FLOAT_VECTOR, dim=manifest["dim"] + 3)
    index_params = client.prepare_index_params()
    for field in ("full", "foreground"):
        index_params.add_index(field_name=field, index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index_params)
    try:
        with pytest.raises(IndexFolderError) as caught:
            SearchIndex.load(folder)
        message = str(caught.value)
        assert f"{manifest['dim'] + 3}-d" in message and "\n" not in message
        client.drop_collection(name)
        with pytest.raises(IndexFolderError, match="is not at"):
            SearchIndex.load(folder)
    finally:
        if client.has_collection(name):
            client.drop_collection(name)


def test_a_rebuild_replaces_the_collection_and_drops_the_old_one(
    tmp_path, catalogue, checkpoint, remover
):
    uri = str(tmp_path / "store.db")
    out = tmp_path / "shop"
    common = {"device": "cpu", "progress": False, "foreground": remover, "milvus": uri}
    first = build_index(str(checkpoint), catalogue, out, **common)["index"]["collection"]
    second = build_index(str(checkpoint), catalogue, out, **common)["index"]["collection"]
    client = connect(os.path.abspath(uri))
    assert first != second and client.list_collections() == [second]
    assert len(SearchIndex.load(out)) == 20


def test_bad_milvus_uris_are_config_errors(tmp_path):
    from bgbias.search.milvus_store import resolve_uri

    with pytest.raises(ConfigError, match="ending in .db"):
        resolve_uri(str(tmp_path / "folder"))
    with pytest.raises(MilvusError):
        connect("http://127.0.0.1:9")
    assert issubclass(MilvusError, BgbiasError)


def test_a_full_disk_while_building_is_one_line_and_no_index(tmp_path, catalogue, checkpoint):
    """Files of the build may not grow past 3000 bytes (RLIMIT_FSIZE: a write past it fails
    with EFBIG, as a full disk fails with ENOSPC): the thumbnails (<= 2.7 KB here), chunks and
    the 1.3 KB faiss file fit, items.json (~3.2 KB) does not."""
    out = tmp_path / "index"
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))\n"
        "from bgbias.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["index", str(checkpoint), str(catalogue), "--out", str(out), "--device", "cpu"]
    result = subprocess.run(
        [sys.executable, "-c", code, *argv, "-q"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{out}: cannot write" in lines[0], result.stderr
    assert not out.exists() and not (tmp_path / ".index.building" / "manifest.json").exists()
    # the chunks stay, so the same command resumes once there is room
    assert list((tmp_path / ".index.building" / "chunks").glob("chunk-*.npz"))
