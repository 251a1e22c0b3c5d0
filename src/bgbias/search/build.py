"""Build a search index: embed a catalogue with any model, resumable by chunks.

Work happens in a hidden folder beside OUT (``.OUT.building``). Every ``chunk_size`` images
are embedded and written as one file (atomically), after their thumbnails, so a killed build
resumes at the first unfinished chunk. The chunk plan is keyed by the model's identity and the
catalogue's files (id, path, label, size, mtime): a changed model or catalogue starts over.
At the end the faiss index, the items and the manifest (last) are written into the build folder,
which then replaces OUT by renames (:mod:`.install`): OUT is always either the old complete
index or the new one.

A build can be split across machines (``step``, see :mod:`.shards`): ``plan`` checks everything
and writes the plan, ``shard`` embeds one shard's chunks (:mod:`.chunks`), ``merge`` writes
the index from every shard's chunks exactly as a one-machine build (``all``) does.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from ..adapters import AdapterOptions, Embedder, load_embedder
from ..devices import resolve_device
from ..errors import ConfigError, DataError, OutputError
from ..io import ensure_writable_dir, remove_tree
from ..outputs import check_output
from ..progress import progress_bar
from ..removal import BackgroundRemover, load_remover
from .catalogue import CatalogueItem, read_catalogue
from .chunks import (
    PLAN,
    build_folder,
    check_shards,
    chunk_file,
    chunk_ranges,
    claim_plan,
    collect,
    plan_key,
    prefetched,
    save_chunk,
    shard_chunks,
    unfinished_shards,
)
from .images import model_input, model_view, open_photo, view_pixels, write_thumbnail
from .index import INDEX_TYPES, THUMBS, model_probe, options_json, write_index_files
from .install import install, manifest_index, no_room_is_one_line
from .store import store_class

log = logging.getLogger(__name__)
CHUNK_SIZE = 512
THUMB_SIZE = 128
STEPS = ("all", "plan", "shard", "merge")
LOCK_WAIT = 120  # seconds a shard waits for a sibling checking the plan (not for a whole build)
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
    rerank: int | None = None,
    step: str = "all",
    shards: int = 1,
    shard: int = 0,
) -> dict[str, Any]:
    """Embed every image of ``catalogue`` (:func:`bgbias.search.catalogue.read_catalogue`) with
    ``model`` (any :func:`bgbias.adapters.load_embedder` form) into an index folder ``out``;
    returns its manifest. Unreadable images are skipped and listed in the manifest.

    ``foreground`` (a mask model name or a :class:`bgbias.removal.BackgroundRemover`): also
    embed each image with its background removed and filled with ``fill``, the second vector
    that fused search (:mod:`bgbias.search.fusion`) queries. ``milvus``: store the vectors in a
    Milvus collection at this URI (a ``.db`` file: Milvus Lite) instead of faiss files; it
    always holds both vectors (``foreground`` defaults to u2netp). ``max_memory``: the byte
    budget of an ``ivfpq`` index (its codes: what stays in memory); ``rerank``: how many
    candidates per result its search re-scores with the exact vectors it keeps on disk (None:
    :data:`bgbias.search.rerank.DEFAULT_RERANK`; 0: none, and no vectors file).

    ``step`` (:data:`STEPS`) with ``shards``: a build in shards (model and foreground given
    by name). ``plan`` embeds nothing and returns ``{"unfinished": [shard...], "chunks": C}``;
    ``shard`` embeds the chunks of shard ``shard`` and returns ``{"shard", "embedded"}``;
    ``merge`` needs every shard's chunks and writes the index as ``all`` does."""
    if step not in STEPS:
        raise ConfigError(f"step {step!r}: choose one of {', '.join(STEPS)}")
    sharded = step != "all"
    if sharded and not (isinstance(model, str) and not isinstance(foreground, BackgroundRemover)):
        raise ConfigError("a build in shards names its model and mask model (each job loads them)")
    kind = INDEX_TYPES.get(index_type)
    out = Path(out)
    check_output(out, "index")  # an index's own folder, or a new or empty one: before all else
    ensure_writable_dir(out.parent)
    if milvus is not None:
        from .milvus_store import connect, resolve_uri

        milvus = resolve_uri(milvus)
        if step != "shard":  # an unreachable URI stops here, before hours of embedding
            connect(milvus).close()
        foreground = foreground or DEFAULT_MASK_MODEL
    spec = None
    if sharded:  # what every shard and the merge build from (see bgbias.search.shards)
        spec = {
            "model": absolute_spec(model),
            "catalogue": str(Path(catalogue).resolve()),
            "out": str(out.resolve()),
            "index_type": kind.name,
            "split": split,
            "batch_size": batch_size,
            "chunk_size": chunk_size,
            "thumb_size": thumb_size,
            "device": device,
            "workers": workers,
            "options": options_json(options or AdapterOptions()),
            "foreground": foreground,
            "fill": fill,
            "milvus": milvus,
            "max_memory": max_memory,
            "rerank": rerank,
            "shards": shards,
        }
    cat = read_catalogue(catalogue, split)
    embedder = model if isinstance(model, Embedder) else load_embedder(model, options)
    device = resolve_device(device)
    embedder.to(device)
    remover = (
        load_remover(foreground, fill, str(device)) if isinstance(foreground, str) else foreground
    )
    store = {
        "backend": "milvus" if milvus else "faiss",
        "uri": milvus,
        "max_memory": max_memory,
        "rerank": rerank,
    }
    if kind.name == "ivfpq" and max_memory and not milvus:  # a budget too small fails now
        from .compressed import plan

        fields = 2 if remover is not None else 1
        plan(len(cat.items), len(model_probe(embedder)), max_memory // fields)
    chunks = chunk_ranges(len(cat.items), chunk_size)
    if sharded:
        check_shards(shards, len(chunks), chunk_size)
    lock = FileLock(out.parent / f".{out.name}.lock")
    with no_room_is_one_line(out):
        try:  # shards take turns checking the plan; a build or a merge holds it throughout
            lock.acquire(timeout=LOCK_WAIT if step in ("plan", "shard") else 0)
        except Timeout:
            raise OutputError(f"{out}: another `bgbias index` is building it") from None
        try:
            work = _claim(embedder, cat, out, chunk_size, thumb_size, remover, spec)
            if step == "plan":
                return {
                    "unfinished": unfinished_shards(work, len(chunks), shards),
                    "chunks": len(chunks),
                }
            if step == "merge":
                _check_merge(out, work, len(chunks), shards)
            if step != "shard":
                return _build_locked(
                    embedder, options, cat, out, work, kind, batch_size, thumb_size, workers,
                    progress, remover, store,
                )  # fmt: skip
        finally:
            lock.release()
        todo = list(shard_chunks(len(chunks), shards, shard))
        embedded = _embed_chunks(
            embedder,
            cat,
            work,
            todo,
            chunk_size,
            batch_size,
            thumb_size,
            workers,
            progress,
            remover,
        )
        return {"shard": shard, "embedded": embedded}


def _claim(embedder, cat, out, chunk_size, thumb_size, remover, spec) -> Path:
    """The build folder, holding this build's plan (an earlier plan's chunks removed)."""
    work = build_folder(out)
    probe = model_probe(embedder)
    masking = {"mask_model": remover.name, "fill": remover.fill} if remover else None
    key = plan_key(embedder.describe(), cat.items, chunk_size, thumb_size, masking)
    plan = {"key": key, "probe": probe, "items": len(cat.items), "chunk_size": chunk_size}
    claim_plan(work, plan | {"build": spec}, out)
    return work


def _check_merge(out: Path, work: Path, chunks: int, shards: int) -> None:
    missing = unfinished_shards(work, chunks, shards)
    if missing:
        listed = ", ".join(str(k) for k in missing)
        raise OutputError(
            f"{out}: shard(s) {listed} of {shards} not finished; launch the shards again "
            "(`bgbias index ... --shards N` runs only those), then merge"
        )


def _build_locked(
    embedder,
    options,
    cat,
    out,
    work,
    kind,
    batch_size,
    thumb_size,
    workers,
    progress,
    remover,
    store,
):
    started = time.perf_counter()
    items = cat.items
    plan = json.loads((work / PLAN).read_text())
    chunk_size, probe = plan["chunk_size"], plan["probe"]
    masking = {"mask_model": remover.name, "fill": remover.fill} if remover else None
    chunks = chunk_ranges(len(items), chunk_size)
    todo = [c for c in range(len(chunks)) if not chunk_file(work, c).is_file()]
    done_before = len(items) - sum(len(chunks[c]) for c in todo)
    if done_before:
        log.info("%s: resuming, %d of %d images already embedded", out, done_before, len(items))
    embed_started = time.perf_counter()
    _embed_chunks(
        embedder, cat, work, todo, chunk_size, batch_size, thumb_size, workers, progress, remover
    )
    embedded = len(items) - done_before
    embed_seconds = time.perf_counter() - embed_started
    embeddings, foreground, positions, failed = collect(cat.source, work, len(chunks))
    replaced = manifest_index(out)
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
        settings={k: v for k, v in store.items() if k != "backend"} | {"name": out.name},
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
    install(work, out)
    if replaced and replaced.get("collection") != manifest["index"].get("collection"):
        store_class(replaced.get("backend", "faiss")).discard(replaced)
    return manifest


def _embed_chunks(
    embedder, cat, work, todo, chunk_size, batch_size, thumb_size, workers, progress, remover
) -> int:
    """Embed the chunks ``todo`` of the catalogue into the build folder ``work`` (each chunk's
    file written once all its images are embedded); returns how many images it embedded."""
    items = cat.items
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

    chunks = chunk_ranges(len(items), chunk_size)
    todo = [c for c in todo if not chunk_file(work, c).is_file()]
    batches = [
        (c, [(p, items[p]) for p in chunks[c][b : b + batch_size]])
        for c in todo
        for b in range(0, len(chunks[c]), batch_size)
    ]
    count = sum(len(chunks[c]) for c in todo)
    bar = progress_bar(count, f"indexing {cat.source.name}", unit="img", enabled=progress)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        stream = prefetched(pool, batches, prepare)
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
            save_chunk(chunk_file(work, chunk), vectors, positions, failed, masked)
    bar.close()
    return count


def _embed(embedder: Embedder, inputs: list[torch.Tensor]) -> np.ndarray:
    return embedder(torch.stack(inputs).to(embedder.device)).cpu().numpy()
