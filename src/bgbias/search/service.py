"""Search by photo, without HTTP: one or more indexes, each with the model it was built with,
and optional test-time background removal of the query (:mod:`bgbias.removal`).

The web application (:mod:`bgbias.search.server`) is a thin shell over :class:`SearchService`;
every failure here is a :class:`ServiceError` (or :class:`~bgbias.search.images.PhotoRejected`)
carrying the HTTP status to answer with.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..devices import resolve_device
from ..errors import BgbiasError, ConfigError
from ..removal import BackgroundRemover, load_remover
from .batching import MicroBatcher
from .fusion import Fusion, parse_fusion
from .images import (
    DEFAULT_MAX_PIXELS,
    jpeg_bytes,
    model_view,
    open_photo,
    pixels_image,
    view_pixels,
)
from .index import SearchIndex
from .photo_batch import PhotoAnswer, PhotoQuery, answer_photos

log = logging.getLogger(__name__)


class ServiceError(BgbiasError):
    status = 400


class NotFound(ServiceError):
    status = 404


class Unavailable(ServiceError):
    status = 503


@dataclass(frozen=True)
class ServeOptions:
    """``workers``: photos decoded at once (bounds memory); ``max_upload_bytes``: the largest
    request body; ``max_pixels``: the largest photo. Concurrent queries are embedded together:
    a batch waits up to ``batch_window_ms`` for queries still decoding, and holds at most
    ``max_batch`` of them (:mod:`bgbias.search.batching`), embedded in forward passes of up
    to ``forward_batch`` images (larger passes ran slower per image on a 2-core CPU)."""

    mask_model: str = "u2netp"
    fill: str = "mean"
    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_k: int = 100
    workers: int = 2
    device: str = "auto"
    batch_window_ms: float = 5.0
    max_batch: int = 16
    forward_batch: int = 4


@dataclass
class Searcher:
    slot: int  # position among the served indexes (in thumbnail URLs)
    name: str
    index: SearchIndex
    embedder: Any  # bgbias.adapters.Embedder


@dataclass(frozen=True)
class PendingPhoto:
    """A photo query decoded and queued for the model thread (``answer``: its future)."""

    searcher: Searcher
    query: PhotoQuery
    k: int
    started: float
    decoded: float
    answer: Future


class SearchService:
    def __init__(
        self,
        indexes: list[SearchIndex],
        options: ServeOptions | None = None,
        remover: BackgroundRemover | None = None,
    ):
        """Each index is searched with the model it was built with (checked against its
        manifest). ``remover``: the background remover (default: ``options.mask_model``,
        loaded now; when it cannot be, removal answers 503 with the reason)."""
        if not indexes:
            raise ServiceError("no index to serve")
        options = options or ServeOptions()
        self.options = options
        device = resolve_device(options.device)
        self.searchers: dict[str, Searcher] = {}
        for slot, index in enumerate(indexes):
            name = index.name
            while name in self.searchers:
                name = f"{name}-{slot + 1}"
            self.searchers[name] = Searcher(slot, name, index, index.load_embedder().to(device))
        self.by_slot = list(self.searchers.values())
        self.removal_problem: str | None = None
        self.remover = remover
        if remover is None:
            try:
                # the engine's batch size for the device: on the CPU one image a pass, since
                # onnxruntime's arena kept a batch of 8's activations (server RSS 1.3 -> 4.2 GB)
                self.remover = load_remover(options.mask_model, options.fill, str(device))
            except BgbiasError as exc:
                self.removal_problem = str(exc)
                log.warning("background removal is off: %s", exc)
        self.slots = threading.BoundedSemaphore(options.workers)
        # every model call and photo search on one thread, in batches: torch keeps one warm
        # OpenMP team per calling thread, and concurrent passes on a few cores only contend
        self.batcher = MicroBatcher(options.batch_window_ms / 1000, options.max_batch)

    @classmethod
    def open(cls, paths: list[str | os.PathLike], options: ServeOptions | None = None):
        return cls([SearchIndex.load(p) for p in paths], options)

    def close(self) -> None:
        """Answers the queued queries, then stops the model thread (a later query starts it
        again)."""
        self.batcher.close()

    def searcher(self, name: str | None) -> Searcher:
        if name is None:
            return self.by_slot[0]
        if name not in self.searchers:
            raise NotFound(f"no index {name!r}; served: {', '.join(self.searchers)}")
        return self.searchers[name]

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "bgbias_version": __version__,
            "indexes": [
                {
                    "name": s.name,
                    "items": len(s.index),
                    "dim": s.index.dim,
                    "model": s.embedder.label,
                    "index_type": s.index.manifest["index"]["type"],
                    "backend": s.index.store.backend,
                    "fusions": ["full", "foreground", "rrf", "weighted:W"]
                    if "foreground" in s.index.fields
                    else ["full"],
                    "recipe": s.embedder.recipe.name,
                }
                for s in self.by_slot
            ],
            "remove_background": {
                "available": self.remover is not None,
                "mask_model": self.remover.name if self.remover else self.options.mask_model,
                "problem": self.removal_problem,
            },
            "limits": {k: v for k, v in asdict(self.options).items() if k.startswith("max_")},
        }

    def _result(self, searcher: Searcher, score: float, position: int) -> dict[str, Any]:
        item = searcher.index.items[position]
        return {
            "id": item["id"],
            "label": item["label"],
            "score": round(float(score), 6),
            "thumbnail": f"/thumbs/{searcher.slot}/{position}",
        }

    @staticmethod
    def _fusion(searcher: Searcher, fusion: str) -> Fusion:
        """``fusion`` parsed and checked against the index: a 400 naming the problem."""
        try:
            parsed = parse_fusion(fusion)
            searcher.index.store.check_fields(parsed)
        except ConfigError as exc:
            raise ServiceError(f"index {searcher.name}: {exc}") from None
        return parsed

    def _answer(
        self, searcher: Searcher, queries: dict, k: int, fusion: Fusion, exclude: int = -1
    ) -> tuple[list[dict], float]:
        """The top ``k`` (without the item at position ``exclude``) and the search seconds."""
        started = time.perf_counter()
        wanted = k + 1 if exclude >= 0 else k
        scores, positions = searcher.index.search(queries, min(wanted, len(searcher.index)), fusion)
        results = self._results(searcher, scores[0], positions[0], k, exclude)
        return results, time.perf_counter() - started

    def _results(
        self, searcher: Searcher, scores: np.ndarray, positions: np.ndarray, k: int, exclude=-1
    ) -> list[dict]:
        """One query's (k',) scores and positions -> its top ``k`` results, without -1 (none
        found) and the item at position ``exclude``."""
        results = [
            self._result(searcher, s, p)
            for s, p in zip(scores.tolist(), positions.tolist(), strict=True)
            if p >= 0 and p != exclude
        ]
        return results[:k]

    def search_photo(
        self,
        data: bytes,
        index: str | None = None,
        k: int = 10,
        remove_background: bool = False,
        fusion: str = "full",
    ) -> dict[str, Any]:
        """The ``k`` catalogue items most similar to the photo ``data`` (file bytes).

        ``fusion`` (:mod:`bgbias.search.fusion`): other than ``full``, the photo is embedded
        twice, as it is (or background-removed, with ``remove_background``) against the items'
        full vectors and background-removed against their foreground vectors. Decoded on the
        calling thread; masked, embedded and searched on the model thread, in one batch with
        the queries that arrive with it."""
        pending = self.submit_photo(data, index, k, remove_background, fusion)
        return self.photo_response(pending, pending.answer.result())

    def submit_photo(
        self,
        data: bytes,
        index: str | None = None,
        k: int = 10,
        remove_background: bool = False,
        fusion: str = "full",
    ) -> PendingPhoto:
        """:meth:`search_photo` up to the model thread: decodes ``data`` here and queues it;
        :meth:`photo_response` makes the answer (``pending.answer``'s result) the response."""
        searcher = self.searcher(index)
        rule = self._fusion(searcher, fusion)
        if (remove_background or rule.needs_foreground) and self.remover is None:
            raise Unavailable(f"background removal is unavailable: {self.removal_problem}")
        recipe = searcher.embedder.recipe
        started = time.perf_counter()
        with self.batcher.arriving():
            with self.slots:
                photo = open_photo(data, self.options.max_pixels, draft_size=recipe.resize)
                view = model_view(photo, recipe)
                pixels = view_pixels(view)
            query = PhotoQuery(view, pixels, remove_background, rule, min(k, len(searcher.index)))
            run = functools.partial(
                answer_photos,
                searcher.index,
                searcher.embedder,
                self.remover,
                self.options.forward_batch,
            )
            answer = self.batcher.submit(("photos", searcher.slot), run, query)
        return PendingPhoto(searcher, query, k, started, time.perf_counter(), answer)

    def photo_response(self, pending: PendingPhoto, answer: PhotoAnswer) -> dict[str, Any]:
        searcher, query = pending.searcher, pending.query
        answered = time.perf_counter()
        results = self._results(searcher, answer.scores, answer.positions, pending.k)
        # without removal the model saw the view itself: no round trip through float pixels
        removed = answer.removed
        seen = jpeg_bytes(pixels_image(removed) if removed is not None else query.view)
        timings = {"decode": pending.decoded - pending.started} | answer.seconds
        timings["queue"] = answered - pending.decoded - sum(answer.seconds.values())
        timings["total"] = time.perf_counter() - pending.started
        return {
            "index": searcher.name,
            "results": results,
            "query": {
                "remove_background": query.remove_background,
                "fusion": query.rule.name,
                "score": score_meaning(query.rule),
                "image": "data:image/jpeg;base64," + base64.b64encode(seen).decode(),
            },
            "timings_ms": {k: round(1000 * v, 2) for k, v in timings.items()},
        }

    def search_item(
        self,
        item_id: str,
        index: str | None = None,
        k: int = 10,
        remove_background: bool = False,
        fusion: str = "full",
        exclude_self: bool = True,
    ) -> dict[str, Any]:
        """ "Find similar": the items nearest to a catalogue item's stored embeddings (the index
        keeps no full-size images, so there is no photo to remove a background from; a fusion
        queries with the item's stored full and foreground vectors); the item itself is left
        out of its results unless ``exclude_self`` is false."""
        if remove_background:
            raise ServiceError(
                "remove_background applies to uploaded photos; a catalogue item is searched "
                "with its indexed embedding"
            )
        searcher = self.searcher(index)
        rule = self._fusion(searcher, fusion)
        position = self._position(searcher, item_id)
        started = time.perf_counter()
        queries = {f: searcher.index.embedding(position, f) for f in rule.fields}
        exclude = position if exclude_self else -1
        results, search_seconds = self._answer(searcher, queries, k, rule, exclude)
        return {
            "index": searcher.name,
            "results": results,
            "query": {
                "item": self._result(searcher, 1.0, position),
                "remove_background": False,
                "fusion": rule.name,
                "score": score_meaning(rule),
                "exclude_self": exclude_self,
            },
            "timings_ms": {
                "search": round(1000 * search_seconds, 2),
                "total": round(1000 * (time.perf_counter() - started), 2),
            },
        }

    def _position(self, searcher: Searcher, item_id: str) -> int:
        try:
            return searcher.index.position(item_id)
        except KeyError:
            raise NotFound(f"no item {item_id!r} in index {searcher.name}") from None

    def item(self, item_id: str, index: str | None = None) -> dict[str, Any]:
        searcher = self.searcher(index)
        position = self._position(searcher, item_id)
        item = searcher.index.items[position]
        return {
            "id": item["id"],
            "label": item["label"],
            "index": searcher.name,
            "thumbnail": f"/thumbs/{searcher.slot}/{position}",
        }

    def items(
        self, index: str | None = None, offset: int = 0, limit: int = 50, query: str = ""
    ) -> dict[str, Any]:
        """A page of the catalogue (ids or labels containing ``query``, case-insensitive)."""
        searcher = self.searcher(index)
        needle = query.lower()
        matching = [
            p
            for p, item in enumerate(searcher.index.items)
            if not needle or needle in item["id"].lower() or needle in str(item["label"]).lower()
        ]
        return {
            "index": searcher.name,
            "total": len(matching),
            "items": [
                self._result(searcher, 0.0, p) | {"score": None}
                for p in matching[offset : offset + limit]
            ],
        }

    def thumbnail(self, slot: int, position: int):
        """The thumbnail file of item ``position`` of the ``slot``-th index; only a file the
        index lists, inside its own folder."""
        if not 0 <= slot < len(self.by_slot):
            raise NotFound(f"no index number {slot}")
        index = self.by_slot[slot].index
        if not 0 <= position < len(index):
            raise NotFound(f"no item number {position} in index {index.name}")
        path = index.thumbnail_path(position)
        if path is None or not path.is_file():
            raise NotFound(f"thumbnail of item {position} of {index.name} is missing")
        return path


def score_meaning(rule: Fusion) -> str:
    """What a result's ``score`` is under ``rule``, in words for the page and the API."""
    if rule.name == "rrf":
        return "reciprocal-rank fusion score of the full and foreground rankings (higher: nearer)"
    if rule.name.startswith("weighted"):
        return f"weighted cosine similarity ({rule.name}) of the full and foreground vectors"
    if rule.name == "foreground":
        return "cosine similarity of the foreground vectors (1: same direction)"
    return "cosine similarity (1: same direction, 0: unrelated)"
