"""A batch of photo queries, answered on the server's model thread: the photos whose
background is to be removed go through the mask model together, every query's images through
the embedding model in as few forward passes as the pass size allows, and the queries sharing
a fusion rule and depth through one vector-store search (:mod:`bgbias.search.batching` forms
the batches).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..removal import BackgroundRemover
from .fusion import Fusion
from .images import model_input
from .index import SearchIndex


@dataclass(frozen=True)
class PhotoQuery:
    """One uploaded photo's work for the model thread. ``view``: what the model sees;
    ``pixels``: its (H, W, 3) float32 0-255; ``depth``: how many results to search for."""

    view: Image.Image
    pixels: np.ndarray
    remove_background: bool
    rule: Fusion
    depth: int


@dataclass(frozen=True)
class PhotoAnswer:
    """``scores``, ``positions``: (depth,), best first; ``removed``: the background-removed
    view's (H, W, 3) pixels, if made; ``seconds``: the batch's mask, embed and search times."""

    scores: np.ndarray
    positions: np.ndarray
    removed: np.ndarray | None
    seconds: dict[str, float]


def answer_photos(
    index: SearchIndex,
    embedder,
    remover: BackgroundRemover | None,
    forward_batch: int,
    queries: list[PhotoQuery],
) -> list[PhotoAnswer]:
    """A batch of photo queries, on the model thread: one mask-model call for those that
    need their background removed, forward passes of up to ``forward_batch`` images, one
    search per (fusion, depth)."""
    recipe = embedder.recipe
    started = time.perf_counter()
    needing = [q for q in queries if q.remove_background or q.rule.needs_foreground]
    removed: dict[int, np.ndarray] = {}
    if needing:
        masked_views = remover.remove_each([q.view for q in needing], recipe)
        removed = {id(q): pixels for q, pixels in zip(needing, masked_views, strict=True)}
    masked = time.perf_counter()
    images: list[torch.Tensor] = []
    rows: list[dict[str, int]] = []  # per query: its fields' rows of the batch
    for query in queries:
        inputs = {}
        if "full" in query.rule.fields:
            inputs["full"] = removed[id(query)] if query.remove_background else query.pixels
        if query.rule.needs_foreground:
            inputs["foreground"] = removed[id(query)]
        rows.append({field: len(images) + n for n, field in enumerate(inputs)})
        images += [model_input(p, recipe.normalization) for p in inputs.values()]
    # a lone query gets every core; with other queries in flight, their decoding and HTTP
    # need a core too, and one thread per pass served 8 clients ~30% faster on a 2-core CPU
    threads = 1 if len(queries) > 1 else torch.get_num_threads()
    with torch.inference_mode(), intra_op_threads(threads):
        passes = torch.stack(images).split(forward_batch)
        embeddings = torch.cat([embedder(part.to(embedder.device)) for part in passes])
    embedded = time.perf_counter()
    found: list[tuple[np.ndarray, np.ndarray]] = [None] * len(queries)  # type: ignore[list-item]
    groups: dict[tuple[Fusion, int], list[int]] = {}
    for n, query in enumerate(queries):
        groups.setdefault((query.rule, query.depth), []).append(n)
    for (rule, depth), members in groups.items():
        stacked = {f: embeddings[[rows[n][f] for n in members]] for f in rule.fields}
        scores, positions = index.search(stacked, depth, rule)
        for row, n in enumerate(members):
            found[n] = (scores[row], positions[row])
    seconds = {
        "mask": masked - started,
        "embed": embedded - masked,
        "search": time.perf_counter() - embedded,
    }
    return [
        PhotoAnswer(scores, positions, removed.get(id(query)), seconds)
        for query, (scores, positions) in zip(queries, found, strict=True)
    ]


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` for the block (a process-wide setting: in the
    server, the model thread is torch's only user)."""
    previous = torch.get_num_threads()
    if count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != previous:
            torch.set_num_threads(previous)
