"""The search server serves only its indexes' own files, and fails to start in one line."""

import json
import shutil
import socket

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from bgbias.cli import main  # noqa: E402
from bgbias.search.index import SearchIndex  # noqa: E402
from bgbias.search.server import create_app  # noqa: E402
from bgbias.search.service import SearchService, ServeOptions  # noqa: E402


def client_for(index_folder):
    service = SearchService([SearchIndex.load(index_folder)], ServeOptions(device="cpu"))
    return TestClient(create_app(service))


@pytest.fixture
def index_copy(built_index, tmp_path):
    copy = tmp_path / "served" / "index"
    shutil.copytree(built_index, copy)
    return copy


def tamper(index_folder, position, thumb):
    items = json.loads((index_folder / "items.json").read_text())
    if thumb is None:
        del items[position]["thumb"]
    else:
        items[position]["thumb"] = thumb
    (index_folder / "items.json").write_text(json.dumps(items))


@pytest.mark.parametrize("how", ["relative", "absolute", "link"])
def test_a_tampered_items_json_cannot_serve_a_file_outside_the_index(index_copy, how):
    secret = index_copy.parent / "secret.txt"
    secret.write_text("root:x:0:0 the secret")
    if how == "relative":
        tamper(index_copy, 0, "../../secret.txt")
    elif how == "absolute":
        tamper(index_copy, 0, str(secret))
    else:
        (index_copy / "thumbs" / "link.jpg").symlink_to(secret)
        tamper(index_copy, 0, "link.jpg")
    response = client_for(index_copy).get("/thumbs/0/0")
    assert response.status_code == 404
    assert "secret" not in response.text.replace("secret.txt", "")


@pytest.mark.parametrize("thumb", ["gone.jpg", None, 7])
def test_a_missing_thumbnail_is_a_404_json(index_copy, thumb):
    tamper(index_copy, 1, thumb)
    response = client_for(index_copy).get("/thumbs/0/1")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "thumbnail" in response.json()["detail"]


def test_a_port_in_use_is_one_line_before_serving_is_announced(built_index, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", str(built_index), "--port", str(port), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"bgbias: error: 127.0.0.1:{port}: address already in use"
    )
    assert "serving" not in err and "Traceback" not in err


def test_served_connections_send_small_writes_at_once():
    """TCP_NODELAY on the connections uvicorn accepts from the server's socket: with Nagle's
    algorithm a keep-alive response's body waited for the client's delayed ACK of its
    headers."""
    import asyncio

    from bgbias.search.server import _listen

    listening = _listen("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        loop = asyncio.get_running_loop()
        accepted = loop.create_future()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(transport.get_extra_info("socket"))

        server = await loop.create_server(Accept, sock=listening)
        reader, writer = await asyncio.open_connection(*listening.getsockname())
        connection = await asyncio.wait_for(accepted, 30)
        nodelay = connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()
        await server.wait_closed()
        return nodelay

    assert asyncio.run(accepted_nodelay()) != 0
