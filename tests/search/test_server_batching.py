"""Serving under load: concurrent photo queries share one forward pass on the model thread and
get the answers they would get alone; a bad upload among them fails alone; the model thread
stops with the server."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from bgbias.search.index import SearchIndex  # noqa: E402
from bgbias.search.server import create_app  # noqa: E402
from bgbias.search.service import SearchService, ServeOptions  # noqa: E402

QUERIES = [  # (item whose image is uploaded, search parameters)
    ("c0/000.png", {"k": 5}),
    ("c1/001.png", {"k": 5}),
    ("c2/002.png", {"k": 3}),
    ("c3/003.png", {"k": 5, "remove_background": True}),
    ("c1/004.png", {"k": 20}),
    ("c0/002.png", {"k": 5, "remove_background": True}),
]


class RecordingEmbedder:
    """The index's embedder, recording how many images each forward pass got."""

    def __init__(self, inner):
        self.inner = inner
        self.batch_sizes: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, images):
        self.batch_sizes.append(len(images))
        return self.inner(images)


@pytest.fixture
def batched(built_index, remover):
    """A service of its own (these tests stop its model thread), forward passes recorded."""
    options = ServeOptions(max_upload_bytes=300_000, device="cpu", max_batch=16, forward_batch=8)
    service = SearchService([SearchIndex.load(built_index)], options, remover=remover)
    service.by_slot[0].embedder = RecordingEmbedder(service.by_slot[0].embedder)
    yield service
    service.close()


def held(service):
    """Occupies the model thread until the returned event is set, so that queries queue."""
    gate = threading.Event()
    service.batcher.submit("hold", lambda payloads: [gate.wait(60) for _ in payloads], None)
    wait_until(lambda: service.batcher.queued == 0, "the model thread is held")
    return gate


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting until {what}")
        time.sleep(0.01)


def same_answer(together: dict, alone: dict) -> None:
    assert [r["id"] for r in together["results"]] == [r["id"] for r in alone["results"]]
    got, expected = (([r["score"] for r in a["results"]]) for a in (together, alone))
    assert got == pytest.approx(expected, abs=1e-4)
    assert together["query"] == alone["query"]  # the same image seen, same fusion and score


def test_concurrent_queries_share_one_forward_pass_and_answer_as_if_alone(batched, catalogue):
    photos = [(catalogue / "images" / item).read_bytes() for item, _ in QUERIES]
    alone = [
        batched.search_photo(p, **params) for p, (_, params) in zip(photos, QUERIES, strict=True)
    ]
    embedder = batched.by_slot[0].embedder
    assert embedder.batch_sizes == [1] * len(QUERIES)
    gate = held(batched)
    with ThreadPoolExecutor(len(QUERIES)) as pool:
        futures = [
            pool.submit(batched.search_photo, p, **params)
            for p, (_, params) in zip(photos, QUERIES, strict=True)
        ]
        wait_until(lambda: batched.batcher.queued == len(QUERIES), "all queries queued")
        gate.set()
        together = [f.result(timeout=60) for f in futures]
    assert embedder.batch_sizes[len(QUERIES) :] == [len(QUERIES)]  # one pass for all six
    for got, expected in zip(together, alone, strict=True):
        same_answer(got, expected)


def test_a_bad_upload_among_concurrent_queries_fails_alone(batched, catalogue):
    import httpx

    from tests.search.helpers import running_server
    from tests.search.test_server import bad_uploads

    good = [(catalogue / "images" / item).read_bytes() for item, _ in QUERIES[:4]]
    alone = [batched.search_photo(p, k=5) for p in good]
    with running_server(create_app(batched)) as url:

        def post(data: bytes) -> httpx.Response:
            files = {"image": ("q.png", data, "image/png")}
            return httpx.post(f"{url}/search", params={"k": 5}, files=files, timeout=60)

        gate = held(batched)
        with ThreadPoolExecutor(len(good) + 2) as pool:
            answers = [pool.submit(post, data) for data in good]
            _, truncated, status, message = bad_uploads()[1]
            # refused while the model thread is busy: the decode failed on its own thread
            refused = pool.submit(post, truncated).result(timeout=60)
            wait_until(lambda: batched.batcher.queued == len(good), "the good queries queued")
            gate.set()
            responses = [a.result(timeout=60) for a in answers]
        assert refused.status_code == status and message in refused.json()["detail"]
        assert [r.status_code for r in responses] == [200] * len(good)
        for response, expected in zip(responses, alone, strict=True):
            same_answer(response.json(), expected)
        assert batched.batcher.running
    assert not batched.batcher.running  # stopped with the server
