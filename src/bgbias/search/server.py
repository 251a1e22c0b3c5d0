"""The search web application (FastAPI): a page and a JSON API over a :class:`SearchService`.

``GET /`` the page; ``GET /health``; ``POST /search`` (multipart ``image``, or form field
``item`` for "find similar"; query ``k``, ``remove_background``, ``index``); ``GET /items``
(a page of the catalogue); ``GET /items/{id}``; ``GET /thumbs/{index number}/{item number}``.
OpenAPI schema at ``/openapi.json``. No ``/docs`` page: FastAPI's Swagger UI loads its scripts
from a CDN, so it would be blank on an offline machine; any OpenAPI viewer reads the schema.

Only thumbnails the index lists are served, by number (no path from a request reaches the file
system). Bodies over the upload limit are refused from their Content-Length before any byte is
read; bodies without one are refused too. Needs ``pip install 'bgbias[serve]'``.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime,
# and they refer to local variables of create_app
import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import socket
from importlib import resources
from ipaddress import ip_address
from typing import Annotated

from .. import __version__
from ..errors import BgbiasError
from .images import PhotoRejected
from .service import SearchService, ServeOptions, ServiceError

try:
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from pydantic import BaseModel, Field
except ImportError as exc:
    raise BgbiasError(
        f"`bgbias serve` needs pip install 'bgbias[serve]' ({exc.name} missing)"
    ) from None

log = logging.getLogger(__name__)


class Result(BaseModel):
    id: str
    label: str | None
    score: float | None = Field(
        description="similarity to the query, higher is nearer: cosine similarity unless the "
        "search was fused (the response's query.score says which)"
    )
    thumbnail: str


class SearchResponse(BaseModel):
    index: str
    results: list[Result]
    query: dict
    timings_ms: dict[str, float]


class ItemsResponse(BaseModel):
    index: str
    total: int
    items: list[Result]


class Item(BaseModel):
    id: str
    label: str | None
    index: str
    thumbnail: str


class Error(BaseModel):
    detail: str


ERRORS = {code: {"model": Error} for code in (400, 404, 413, 415, 503)}


class UploadLimit:
    """ASGI middleware: a POST body over ``max_bytes`` (by its Content-Length) gets 413, one
    without a Content-Length 411, before the application reads it."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is None or not length.isdigit():
            return await _reply(send, 411, "an upload needs a Content-Length header")
        if int(length) > self.max_bytes:
            return await _reply(
                send,
                413,
                f"upload of {int(length)} bytes is over this server's limit of "
                f"{self.max_bytes} bytes (bgbias serve --max-upload-mb)",
            )
        return await self.app(scope, receive, send)


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@functools.cache  # a package file: read once, not on every GET /
def page_html() -> str:
    return resources.files("bgbias.search").joinpath("static/index.html").read_text()


def create_app(service: SearchService) -> FastAPI:
    options = service.options

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()  # the model thread stops with the server

    app = FastAPI(
        title="bgbias search",
        description="Search a catalogue by photo, optionally removing the query's background "
        "first (test-time background removal).",
        version=__version__,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: broken offline (see above)
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(UploadLimit, max_bytes=options.max_upload_bytes)

    @app.exception_handler(ServiceError)
    @app.exception_handler(PhotoRejected)
    async def refused(request: Request, exc: ServiceError | PhotoRejected) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return page_html()

    @app.get("/health")
    def health() -> dict:
        return service.health()

    @app.post("/search", response_model=SearchResponse, responses=ERRORS)
    async def search(
        image: Annotated[UploadFile | None, File(description="the query photo")] = None,
        item: Annotated[str | None, Form(description="or: a catalogue item's id")] = None,
        k: Annotated[int, Query(ge=1, le=options.max_k, description="how many results")] = 10,
        remove_background: Annotated[
            bool, Query(description="remove the photo's background before embedding")
        ] = False,
        index: Annotated[str | None, Query(description="which index (default: the first)")] = None,
        fusion: Annotated[
            str,
            Query(
                description="full, foreground, rrf or weighted:W: which of the items' vectors "
                "(full image, foreground only) to search, and how to fuse the two rankings"
            ),
        ] = "full",
        exclude_self: Annotated[
            bool, Query(description="an item search leaves the item itself out of its results")
        ] = True,
    ) -> dict:
        """The ``k`` catalogue items most similar to the photo (or item), best first; what the
        scores are is in ``query.score`` (cosine similarity unless fused)."""
        # async: the photo decodes on a worker thread and the batch runs on the model thread;
        # this waits for both without holding a thread (each hand-over costs a wake-up)
        if (image is None) == (item is None):
            raise ServiceError("send either a photo (multipart field 'image') or an 'item' id")
        if item is not None:
            return await run_in_threadpool(
                service.search_item, item, index, k, remove_background, fusion, exclude_self
            )
        data = await image.read()
        pending = await run_in_threadpool(
            service.submit_photo, data, index, k, remove_background, fusion
        )
        return service.photo_response(pending, await asyncio.wrap_future(pending.answer))

    @app.get("/items", response_model=ItemsResponse, responses=ERRORS)
    def items(
        index: str | None = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        q: Annotated[str, Query(description="only ids or labels containing this")] = "",
    ) -> dict:
        return service.items(index, offset, limit, q)

    @app.get("/items/{item_id:path}", response_model=Item, responses=ERRORS)
    def get_item(item_id: str, index: str | None = None) -> dict:
        return service.item(item_id, index)

    @app.get("/thumbs/{slot}/{position}", response_class=FileResponse, responses=ERRORS)
    def thumbnail(slot: int, position: int) -> FileResponse:
        return FileResponse(service.thumbnail(slot, position), media_type="image/jpeg")

    return app


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def serve(
    indexes: list[str | os.PathLike],
    host: str = "127.0.0.1",
    port: int = 8000,
    options: ServeOptions | None = None,
) -> None:
    """Run the application with uvicorn until interrupted."""
    import uvicorn

    listening = _listen(host, port)  # a port in use fails now, not after the models load
    service = SearchService.open(indexes, options)
    app = create_app(service)
    if not is_loopback(host):
        log.warning("serving on %s: other machines can reach this server", host)
    names = ", ".join(
        f"{s.name} ({len(s.index)} items, {s.embedder.label})" for s in service.by_slot
    )
    log.info("serving %s on http://%s:%d/", names, host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    with listening:
        uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound as uvicorn binds it; a refusal is one line naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on TCP-proto sockets, and
    # without it Nagle held each keep-alive response's body for the client's delayed ACK (40 ms)
    listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        listening.listen(2048)
    except OSError as exc:
        listening.close()
        reason = (
            "address already in use"
            if exc.errno == errno.EADDRINUSE
            else f"cannot listen here ({exc.strerror or exc})"
        )
        raise BgbiasError(f"{host}:{port}: {reason}") from None
    listening.set_inheritable(True)
    return listening
