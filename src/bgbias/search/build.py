"""Build a search index: embed a catalogue with any model, resumable by chunks.

Work happens in a hidden folder beside OUT (``.OUT.building``). Every ``chunk_size`` images
are embedded and written as one file (atomically), after their thumbnails, so a killed build
resumes at the first unfinished chunk. The chunk plan is keyed by the model's identity and the
catalogue's files (id, path, label, size, mtime): a changed model or catalogue starts over.
At the end the faiss index, the items and the manifest (last) are written into the build folder,
which then replaces OUT by renames: OUT is always either the old complete index or the new one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from ..adapters import AdapterOptions, Embedder, load_embedder
from ..devices import resolve_device
from ..errors import DataError, OutputError
from ..io import atomic_write, ensure_writable_dir, move_aside, remove_tree, write_json
from ..outputs import MARKER, check_output, mark_output
from ..progress import progress_bar
from ..removal import BackgroundRemover, load_remover
from .catalogue import CatalogueItem, read_catalogue
from .faiss_store import FAISS_FILES
from .images import model_input, model_view, open_photo, view_pixels, write_thumbnail
from .index import (
    INDEX_FORMAT,
    INDEX_TYPES,
    ITEMS,
    MANIFEST,
    THUMBS,
    model_probe,
    options_json,
    write_index_files,
)
from .store import store_class

log = logging.getLogger(__name__)
CHUNK_SIZE = 512
THUMB_SIZE = 128
PLAN = "plan.json"
# what a build writes into OUT (anything else there is the user's, and kept by a rebuild)
INDEX_OUTPUTS = {MANIFEST, ITEMS, THUMBS, PLAN, "chunks", MARKER, *FAISS_FILES.values()}
WRITE_FAILURES = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}  # no room to write
DEFAULT_MASK_MODEL = "u2netp"  # of a Milvus index's foreground vectors when none is named
# position, model input, its foreground's model input (or None), error
Prepared = tuple[int, "torch.Tensor | None", "torch.Tensor | None", "str | None"]


def absolute_spec(spec: str) -> str:
    """``spec`` with a file it names made absolute (``run/best.ckpt``, ``onnx:m.onnx``,
    ``python:m.py:make``), so the index finds its model from any working folder."""
    if Path(spec).exists():
        return str(Path(spec).resolve())
    prefix, colon, rest = spec.partition(":")
    if not colon or not rest:
        return spec
    module, sep, factory = rest.rpartition(":")  # python:<file.py>:<factory>
    for path, suffix in ((rest, ""), (module, sep + factory)):
        if path and Path(path).exists():
            return f"{prefix}:{Path(path).resolve()}{suffix}"
    return spec


def plan_key(
    embedder: Embedder,
    probe: list[float],
    items: list[CatalogueItem],
    chunk_size: int,
    thumb_size,
    foreground: dict | None = None,
) -> str:
    digest = hashlib.sha256()
    head = {"format": INDEX_FORMAT, "model": embedder.describe(), "chunk": chunk_size}
    head["foreground"] = foreground  # chunks hold foreground vectors of this mask model, or none
    head["probe"] = probe  # no resuming with other weights (random, retrained, edited code)
    digest.update(json.dumps(head | {"thumb": thumb_size}, sort_keys=True, default=str).encode())
    for item in items:
        stat = item.path.stat()
        line = f"{item.id}\0{item.path}\0{item.label}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
        digest.update(line.encode())
    return digest.hexdigest()


def _prefetched(pool: ThreadPoolExecutor, batches, prepare, lookahead: int = 2) -> Iterator:
    """Yields ``(chunk, [prepared...])`` per batch, preparing the next ``lookahead`` batches on
    the pool while the caller embeds this one."""
    pending: deque = deque()
    queue = iter(batches)

    def submit() -> None:
        batch = next(queue, None)
        if batch is not None:
            chunk, jobs = batch
            pending.append((chunk, [pool.submit(prepare, *job) for job in jobs]))

    for _ in range(lookahead + 1):
        submit()
    while pending:
        chunk, futures = pending.popleft()
        submit()
        yield chunk, [future.result() for future in futures]


def build_index(
    model: str | Embedder,
    catalogue: str | os.PathLike,
    out: str | os.PathLike,
    index_type: str = "flat",
    split: str | None = None,
    batch_size: int = 32,
    chunk_size: int = CHUNK_SIZE,
    thumb_size: int = THUMB_SIZE,
    device: str = "auto",
    workers: int = 2,
    progress: bool = True,
    options: AdapterOptions | None = None,
    foreground: str | BackgroundRemover | None = None,
    fill: str = "mean",
    milvus: str | None = None,
    max_memory: int | None = None,
) -> dict[str, Any]:
    """Embed every image of ``catalogue`` (:func:`bgbias.search.catalogue.read_catalogue`) with
    ``model`` (any :func:`bgbias.adapters.load_embedder` form) into an index folder ``out``;
    returns its manifest. Unreadable images are skipped and listed in the manifest.

    ``foreground`` (a mask model name or a :class:`bgbias.removal.BackgroundRemover`): also
    embed each image with its background removed and filled with ``fill``, the second vector
    that fused search (:mod:`bgbias.search.fusion`) queries. ``milvus``: store the vectors in a
    Milvus collection at this URI (a ``.db`` file: Milvus Lite) instead of faiss files; it
    always holds both vectors (``foreground`` defaults to u2netp). ``max_memory``: the byte
    budget of an ``ivfpq`` index."""
    kind = INDEX_TYPES.get(index_type)
    out = Path(out)
    check_output(out, "index")  # an index's own folder, or a new or empty one: before all else
    ensure_writable_dir(out.parent)
    if milvus is not None:
        from .milvus_store import connect, resolve_uri

        milvus = resolve_uri(milvus)
        connect(milvus).close()  # an unreachable URI stops here, before hours of embedding
        foreground = foreground or DEFAULT_MASK_MODEL
    cat = read_catalogue(catalogue, split)
    embedder = model if isinstance(model, Embedder) else load_embedder(model, options)
    device = resolve_device(device)
    embedder.to(device)
    remover = (
        load_remover(foreground, fill, str(device)) if isinstance(foreground, str) else foreground
    )
    store = {"backend": "milvus" if milvus else "faiss", "uri": milvus, "max_memory": max_memory}
    if kind.name == "ivfpq" and max_memory and not milvus:  # a budget too small fails now
        from .compressed import plan

        fields = 2 if remover is not None else 1
        plan(len(cat.items), len(model_probe(embedder)), max_memory // fields)
    lock = FileLock(out.parent / f".{out.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputError(f"{out}: another `bgbias index` is building it") from None
    try:
        return _build_locked(
            embedder,
            options,
            cat,
            out,
            kind,
            batch_size,
            chunk_size,
            thumb_size,
            workers,
            progress,
            remover,
            store,
        )
    except OSError as exc:  # a full disk: the finished chunks stay, a rerun resumes
        if exc.errno not in WRITE_FAILURES:
            raise
        where = exc.filename or "a file of the build"
        raise OutputError(
            f"{out}: cannot write {where} ({exc.strerror or exc}); the build resumes when run "
            "again with room"
        ) from None
    finally:
        lock.release()


def _build_locked(
    embedder,
    options,
    cat,
    out,
    kind,
    batch_size,
    chunk_size,
    thumb_size,
    workers,
    progress,
    remover,
    store,
):
    started = time.perf_counter()
    work = out.parent / f".{out.name}.building"
    items = cat.items
    probe = model_probe(embedder)
    masking = {"mask_model": remover.name, "fill": remover.fill} if remover else None
    key = plan_key(embedder, probe, items, chunk_size, thumb_size, masking)
    plan_file = work / PLAN
    if plan_file.is_file() and json.loads(plan_file.read_text()).get("key") != key:
        log.info(
            "%s: the model or the catalogue changed since the interrupted build; starting over", out
        )
        remove_tree(work)
    (work / "chunks").mkdir(parents=True, exist_ok=True)
    (work / THUMBS).mkdir(exist_ok=True)
    write_json(plan_file, {"key": key, "items": len(items), "chunk_size": chunk_size})

    recipe = embedder.recipe
    draft = max(recipe.resize, thumb_size)

    def prepare(position: int, item: CatalogueItem) -> Prepared:
        try:
            photo = open_photo(item.path, max_pixels=None, draft_size=draft)
        except DataError as exc:
            return position, None, None, str(exc)
        write_thumbnail(photo, work / THUMBS / f"{position:07d}.jpg", thumb_size)
        view = model_view(photo, recipe)
        full = model_input(view_pixels(view), recipe.normalization)
        if remover is None:
            return position, full, None, None
        # the mask is predicted on the view the model sees, as a search query's is
        return position, full, model_input(remover.remove(view, recipe), recipe.normalization), None

    def chunk_file(chunk: int) -> Path:
        return work / "chunks" / f"chunk-{chunk:05d}.npz"

    chunks = [
        range(start, min(start + chunk_size, len(items)))
        for start in range(0, len(items), chunk_size)
    ]
    todo = [c for c in range(len(chunks)) if not chunk_file(c).is_file()]
    done_before = len(items) - sum(len(chunks[c]) for c in todo)
    if done_before:
        log.info("%s: resuming, %d of %d images already embedded", out, done_before, len(items))
    batches = [
        (c, [(p, items[p]) for p in chunks[c][b : b + batch_size]])
        for c in todo
        for b in range(0, len(chunks[c]), batch_size)
    ]
    bar = progress_bar(len(items), f"indexing {cat.source.name}", unit="img", enabled=progress)
    bar.update(done_before)
    embed_started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        stream = _prefetched(pool, batches, prepare)
        for chunk, group in groupby(stream, key=lambda entry: entry[0]):
            vectors, masked, positions, failed = [], [], [], []
            for _, prepared in group:
                good = [(p, x, f) for p, x, f, _ in prepared if x is not None]
                failed += [(p, error) for p, x, _, error in prepared if x is None]
                if good:
                    vectors.append(_embed(embedder, [x for _, x, _ in good]))
                    if remover is not None:
                        masked.append(_embed(embedder, [f for _, _, f in good]))
                    positions += [p for p, _, _ in good]
                bar.update(len(prepared))
            _save_chunk(chunk_file(chunk), vectors, positions, failed, masked)
    bar.close()
    embedded = len(items) - done_before
    embed_seconds = time.perf_counter() - embed_started
    embeddings, foreground, positions, failed = _collect(cat, len(chunks), chunk_file)
    replaced = _manifest_index(out)
    manifest = write_index_files(
        work,
        embeddings,
        [
            {
                "id": items[p].id,
                "label": items[p].label,
                "path": str(items[p].path),
                "thumb": f"{p:07d}.jpg",
            }
            for p in positions
        ],
        model=embedder.describe()
        | {
            "spec": absolute_spec(embedder.spec),
            "options": options_json(options or AdapterOptions()),
            "probe": probe,
        },
        index_type=kind.name,
        foreground=foreground,
        backend=store["backend"],
        settings={"uri": store["uri"], "max_memory": store["max_memory"], "name": out.name},
        extra={
            "foreground": masking,
            "catalogue": {
                "source": str(cat.source.resolve()),
                "layout": cat.layout,
                "split": cat.split,
                "listed": len(items),
                "skipped": [{"id": items[p].id, "error": e} for p, e in failed],
            },
            "thumb_size": thumb_size,
            "build": {
                "seconds": round(time.perf_counter() - started, 2),
                "images_embedded_now": embedded,
                "images_per_second": round(embedded / embed_seconds, 2) if embedded else None,
                "resumed_images": done_before,
                "batch_size": batch_size,
                "device": str(embedder.device),
            },
        },
    )
    remove_tree(work / "chunks")
    (work / PLAN).unlink()
    _install(work, out)
    if replaced and replaced.get("collection") != manifest["index"].get("collection"):
        store_class(replaced.get("backend", "faiss")).discard(replaced)
    return manifest


def _embed(embedder: Embedder, inputs: list[torch.Tensor]) -> np.ndarray:
    return embedder(torch.stack(inputs).to(embedder.device)).cpu().numpy()


def _manifest_index(out: Path) -> dict[str, Any] | None:
    """The ``index`` section of the index at ``out`` that a build replaces (its Milvus
    collection is dropped once the new index is in place)."""
    try:
        return json.loads((out / MANIFEST).read_text()).get("index")
    except (OSError, ValueError):
        return None


def _save_chunk(path: Path, vectors, positions, failed, masked=()) -> None:
    with atomic_write(path, "wb") as handle:
        np.savez(
            handle,
            embeddings=np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32),
            foreground=np.concatenate(masked) if masked else np.zeros((0, 0), np.float32),
            positions=np.asarray(positions, dtype=np.int64),
            failed_positions=np.asarray([p for p, _ in failed], dtype=np.int64),
            failed_errors=np.asarray([e for _, e in failed], dtype=str),
        )


def _collect(cat, chunks: int, chunk_file):
    """The embeddings, foreground embeddings (or None), and catalogue positions of every chunk,
    and the images that failed."""
    vectors, masked, positions, failed = [], [], [], []
    for chunk in range(chunks):
        with np.load(chunk_file(chunk)) as data:
            if len(data["positions"]):
                vectors.append(data["embeddings"])
                masked.append(data["foreground"])
                positions += data["positions"].tolist()
            failed += list(
                zip(data["failed_positions"].tolist(), data["failed_errors"].tolist(), strict=True)
            )
    if not positions:
        shown = "; ".join(error for _, error in failed[:3])
        raise DataError(f"{cat.source}: no catalogue image could be read ({shown})")
    for _, error in failed:
        log.warning("skipped %s", error)
    foreground = np.concatenate(masked) if all(len(m) for m in masked) else None
    return np.concatenate(vectors), foreground, positions, failed


def _install(work: Path, out: Path) -> None:
    """Put the finished build folder at ``out``, replacing an older index there; files the
    build did not write (a user's notes) move into the new folder first."""
    mark_output(work, "index")
    if out.is_dir():
        for entry in out.iterdir():
            if entry.name not in INDEX_OUTPUTS and not os.path.lexists(work / entry.name):
                os.replace(entry, work / entry.name)
    aside = move_aside(out) if out.exists() else None
    os.replace(work, out)
    if aside is not None:
        remove_tree(aside)
