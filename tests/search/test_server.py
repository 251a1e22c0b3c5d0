"""The web application through FastAPI's test client: every endpoint, every bad input."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from bgbias.search.server import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(service):
    return TestClient(create_app(service))


def photo(catalogue, item_id="c1/003.png") -> bytes:
    return (catalogue / "images" / item_id).read_bytes()


def upload(client, data: bytes, **params):
    return client.post("/search", params=params, files={"image": ("q.png", data, "image/png")})


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_health_lists_indexes_removal_and_limits(client):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert [i["name"] for i in health["indexes"]] == ["shop-index", "shop-bgaugment"]
    assert health["indexes"][0]["items"] == 20 and health["indexes"][0]["model"] == "ArcFace"
    assert health["remove_background"] == {
        "available": True,
        "mask_model": "test-masker",
        "problem": None,
    }
    assert health["limits"]["max_upload_bytes"] == 300_000


def test_the_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    page = response.text
    assert "remove background" in page and 'id="columns"' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # works offline, no CDN


def test_openapi_schema_describes_the_api(client):
    schema = client.get("/openapi.json").json()
    assert {"/health", "/search", "/items", "/items/{item_id}"} <= set(schema["paths"])
    search = schema["paths"]["/search"]["post"]
    names = {p["name"] for p in search["parameters"]}
    assert names == {"k", "remove_background", "index", "fusion"}
    body = search["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][body.split("/")[-1]]["properties"]
    assert {"image", "item"} <= set(fields)
    assert client.get("/docs").status_code == 200


def test_search_by_photo_ranks_the_photo_itself_first(client, catalogue):
    response = upload(client, photo(catalogue), k=5)
    assert response.status_code == 200
    answer = response.json()
    results = answer["results"]
    assert len(results) == 5 and answer["index"] == "shop-index"
    assert set(results[0]) == {"id", "label", "score", "thumbnail"}
    assert results[0]["id"] == "c1/003.png" and results[0]["label"] == "c1"
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert answer["query"]["image"].startswith("data:image/jpeg;base64,")
    thumb = client.get(results[1]["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).format == "JPEG"


def test_k_and_index_choose_what_answers(client, catalogue):
    assert len(upload(client, photo(catalogue), k=3).json()["results"]) == 3
    assert len(upload(client, photo(catalogue), k=50).json()["results"]) == 20  # all there is
    for bad_k in (0, 51, "many"):
        assert upload(client, photo(catalogue), k=bad_k).status_code == 422
    other = upload(client, photo(catalogue), k=5, index="shop-bgaugment").json()
    first = upload(client, photo(catalogue), k=5).json()
    assert other["index"] == "shop-bgaugment" and other["results"][0]["id"] == "c1/003.png"
    assert [r["score"] for r in other["results"]] != [r["score"] for r in first["results"]]
    missing = upload(client, photo(catalogue), index="nope")
    assert missing.status_code == 404 and "no index 'nope'" in missing.json()["detail"]


def test_a_16_bit_upload_is_searched_as_its_8_bit_version(client, catalogue):
    grey = np.asarray(Image.open(io.BytesIO(photo(catalogue))).convert("L"))
    rng = np.random.default_rng(1)
    deep = grey.astype(np.uint16) * 257 + rng.integers(0, 128, grey.shape).astype(np.uint16)
    eight = upload(client, encoded(Image.fromarray(grey)), k=20).json()["results"]
    sixteen = upload(client, encoded(Image.fromarray(deep)), k=20).json()["results"]
    assert [r["id"] for r in sixteen] == [r["id"] for r in eight]
    assert [r["score"] for r in sixteen] == pytest.approx([r["score"] for r in eight], abs=1e-4)


def test_remove_background_changes_what_the_model_sees(client, catalogue):
    plain = upload(client, photo(catalogue), k=20).json()
    removed = upload(client, photo(catalogue), k=20, remove_background="true").json()
    assert removed["query"]["remove_background"] is True
    assert removed["query"]["image"] != plain["query"]["image"]
    assert removed["timings_ms"]["mask"] > 0
    plain_scores = {r["id"]: r["score"] for r in plain["results"]}
    removed_scores = {r["id"]: r["score"] for r in removed["results"]}
    assert max(abs(plain_scores[i] - removed_scores[i]) for i in plain_scores) > 1e-3


def test_find_similar_uses_the_items_stored_embedding(client):
    answer = client.post("/search", params={"k": 4}, data={"item": "c2/001.png"}).json()
    assert answer["results"][0]["id"] == "c2/001.png"
    assert answer["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert answer["query"]["item"]["id"] == "c2/001.png"
    cases = [
        ({"data": {"item": "c9/nope.png"}}, 404, "no item 'c9/nope.png'"),
        (
            {"data": {"item": "c2/001.png"}, "params": {"remove_background": "true"}},
            400,
            "applies to uploaded photos",
        ),
        ({}, 400, "send either a photo"),
        (
            {"data": {"item": "c2/001.png"}, "files": {"image": ("q.png", b"x", "image/png")}},
            400,
            "send either a photo",
        ),
    ]
    for kwargs, status, message in cases:
        response = client.post("/search", **kwargs)
        assert response.status_code == status and message in response.json()["detail"]


def test_items_by_id_and_a_browsable_page(client):
    item = client.get("/items/c3/004.png").json()
    assert item == {
        "id": "c3/004.png",
        "label": "c3",
        "index": "shop-index",
        "thumbnail": item["thumbnail"],
    }
    assert client.get(item["thumbnail"]).status_code == 200
    assert client.get("/items/c3/999.png").status_code == 404
    page = client.get("/items", params={"q": "c2", "limit": 3}).json()
    assert page["total"] == 5 and [i["id"] for i in page["items"]] == [
        "c2/000.png",
        "c2/001.png",
        "c2/002.png",
    ]
    assert client.get("/items", params={"index": "shop-bgaugment"}).json()["total"] == 20


def test_only_the_indexes_own_thumbnails_are_served(client, built_index):
    secret = (built_index / "manifest.json").read_text()
    attempts = [
        "/thumbs/0/-1",
        "/thumbs/0/20",
        "/thumbs/2/0",
        "/thumbs/0/..%2Fmanifest.json",
        "/thumbs/0/../../manifest.json",
        "/thumbs/../manifest.json",
        "/thumbs/0/%2e%2e%2f%2e%2e%2fitems.json",
        "/thumbs/0/0000000.jpg",
        "/items/..%2F..%2F..%2Fetc%2Fpasswd",
        "/items/%2Fetc%2Fpasswd",
        "/static/../manifest.json",
        "/manifest.json",
        "/index.faiss",
    ]
    for path in attempts:
        response = client.get(path)
        assert response.status_code in (404, 422), path
        assert secret not in response.text and "root:" not in response.text


def bad_uploads() -> list[tuple[str, bytes, int, str]]:
    rng = np.random.default_rng(0)
    good = encoded(Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)), "JPEG")
    huge = encoded(Image.new("L", (10_000, 10_000)))  # 100 megapixels in ~100 kB
    noise = encoded(Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)))
    return [
        ("not an image", b"GIF89a? no: plain text pretending to be a photo", 415, "not an image"),
        ("truncated", good[: len(good) // 2], 400, "corrupt or truncated image"),
        ("100 megapixels", huge, 413, "100.0 megapixels), over the limit of 50.0 megapixels"),
        ("empty", b"", 400, "empty file"),
        ("oversized", noise, 413, "over this server's limit of 300000 bytes"),
    ]


@pytest.mark.parametrize("case", bad_uploads(), ids=lambda case: case[0])
def test_bad_uploads_get_a_clear_4xx_and_the_server_keeps_serving(client, catalogue, case):
    _, data, status, message = case
    response = upload(client, data)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["detail"]
    assert upload(client, photo(catalogue), k=2).status_code == 200


def test_an_upload_without_content_length_is_refused(client):
    def chunks():
        yield b"--x\r\n"

    response = client.post(
        "/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 411 and "Content-Length" in response.json()["detail"]


def test_missing_serve_extra_names_it(built_index):
    code = (
        "import sys; sys.modules['fastapi'] = None; from bgbias.cli import main; "
        f"sys.exit(main(['serve', {str(built_index)!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install 'bgbias[serve]'" in result.stderr and "fastapi" in result.stderr


def test_health_json_is_plain_json(client):
    json.dumps(client.get("/health").json())


@pytest.mark.slow
def test_serve_command_binds_loopback_and_answers(built_index, tmp_path):
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "BGBIAS_HOME": str(tmp_path),
        "U2NET_HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
    }
    command = [sys.executable, "-m", "bgbias", "serve", str(built_index), "--port", str(port)]
    server = subprocess.Popen(command, env=os.environ | env, stderr=subprocess.PIPE, text=True)
    try:
        health = None
        for _ in range(300):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health").json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health["indexes"][0]["items"] == 20
        assert health["remove_background"]["available"] is False  # u2netp not provisioned here
        listening = [c for c in listening_sockets(server.pid) if c[1] == port]
        assert listening == [("127.0.0.1", port)]
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}/" in err and "background removal is off" in err


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """Listening TCP sockets (address, port) of process ``pid``, from /proc (Linux)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed since the listing (the server is still starting up)
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN
            address, port = fields[1].split(":")
            ip = ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
            found.append((ip, int(port, 16)))
    return found


@pytest.mark.slow
def test_a_burst_of_good_and_bad_uploads_leaves_the_server_serving(service, catalogue):
    import threading

    import httpx

    from tests.search.helpers import running_server

    good = [photo(catalogue, f"c{i}/00{i}.png") for i in range(4)]
    kinds = [(data, 200, {}) for data in good] + [(good[0], 200, {"remove_background": "true"})]
    kinds += [(data, status, {}) for _, data, status, _ in bad_uploads()]
    total, clients = 300, 8
    outcomes: list[tuple[int, int]] = []

    def rss_mb() -> float:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    with running_server(create_app(service)) as url:

        def client_loop(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                for i in range(worker, total, clients):
                    data, status, params = kinds[i % len(kinds)]
                    files = {"image": ("q.png", data, "image/png")}
                    response = http.post("/search", params={"k": 5, **params}, files=files)
                    outcomes.append((response.status_code, status))

        before = rss_mb()
        threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        growth = rss_mb() - before
        assert httpx.get(f"{url}/health").status_code == 200
    assert len(outcomes) == total
    assert [got for got, expected in outcomes if got != expected] == []
    assert growth < 150  # MB: nothing decoded is kept (a 100-megapixel image would be 300 MB)
