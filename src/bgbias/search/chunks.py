"""The resumable part of an index build: the catalogue in chunks of ``chunk_size`` images, one
file each (written atomically), in the build folder beside OUT (``.OUT.building/chunks``), and
the plan they belong to (``plan.json``). Chunks of another plan (a changed model or catalogue)
are never mixed in. A sharded build gives each shard a contiguous run of chunks, so the shards'
chunks are the very chunks (same batches, same vectors) one machine would write."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..io import atomic_write, remove_tree, write_json
from .catalogue import CatalogueItem
from .index import INDEX_FORMAT, PROBE_TOLERANCE, THUMBS

log = logging.getLogger(__name__)
PLAN = "plan.json"


def build_folder(out: str | os.PathLike) -> Path:
    """Where a build of the index at ``out`` keeps its plan and chunks until it is complete."""
    out = Path(out)
    return out.parent / f".{out.name}.building"


def plan_key(
    describe: dict[str, Any],
    items: list[CatalogueItem],
    chunk_size: int,
    thumb_size,
    foreground: dict | None = None,
) -> str:
    """What the chunks depend on: the model (``describe``), the chunking and the catalogue's
    files (id, path, label, size, mtime). The model's probe is compared beside it, within
    :data:`PROBE_TOLERANCE` (a GPU shard and a CPU merge round it differently)."""
    digest = hashlib.sha256()
    head = {"format": INDEX_FORMAT, "model": describe, "chunk": chunk_size}
    head["foreground"] = foreground  # chunks hold foreground vectors of this mask model, or none
    digest.update(json.dumps(head | {"thumb": thumb_size}, sort_keys=True, default=str).encode())
    for item in items:
        stat = item.path.stat()
        line = f"{item.id}\0{item.path}\0{item.label}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
        digest.update(line.encode())
    return digest.hexdigest()


def claim_plan(work: Path, plan: dict[str, Any], out: Path) -> None:
    """Make ``work`` hold ``plan``'s chunks: an earlier build's folder of another plan (another
    model, catalogue or weights: a probe beyond the tolerance) is removed first."""
    plan_file = work / PLAN
    if plan_file.is_file():
        before = json.loads(plan_file.read_text())
        drift = np.abs(np.asarray(before.get("probe", [])) - np.asarray(plan["probe"]))
        same_probe = len(before.get("probe", [])) == len(plan["probe"]) and (
            float(drift.max(initial=0.0)) <= PROBE_TOLERANCE
        )
        if before.get("key") != plan["key"] or not same_probe:
            log.info(
                "%s: the model or the catalogue changed since the last build; starting over", out
            )
            remove_tree(work)
    (work / "chunks").mkdir(parents=True, exist_ok=True)
    (work / THUMBS).mkdir(exist_ok=True)
    write_json(plan_file, plan)


def read_plan(work: Path) -> dict[str, Any] | None:
    try:
        return json.loads((work / PLAN).read_text())
    except (OSError, ValueError):
        return None


def chunk_ranges(items: int, chunk_size: int) -> list[range]:
    """The catalogue positions of each chunk."""
    return [range(start, min(start + chunk_size, items)) for start in range(0, items, chunk_size)]


def shard_chunks(chunks: int, shards: int, shard: int) -> range:
    """The chunks of shard ``shard`` of ``shards``: a contiguous run, as even as can be."""
    return range(shard * chunks // shards, (shard + 1) * chunks // shards)


def check_shards(shards: int, chunks: int, chunk_size: int) -> None:
    if shards > chunks:
        raise ConfigError(
            f"--shards {shards}: the catalogue makes only {chunks} chunk(s) of --chunk-size "
            f"{chunk_size}; use at most {chunks} shard(s) or a smaller --chunk-size"
        )


def chunk_file(work: Path, chunk: int) -> Path:
    return work / "chunks" / f"chunk-{chunk:05d}.npz"


def unfinished_shards(work: Path, chunks: int, shards: int) -> list[int]:
    """The shards with a chunk not written yet."""
    return [
        k
        for k in range(shards)
        if not all(chunk_file(work, c).is_file() for c in shard_chunks(chunks, shards, k))
    ]


def prefetched(pool: ThreadPoolExecutor, batches, prepare, lookahead: int = 2) -> Iterator:
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


def save_chunk(path: Path, vectors, positions, failed, masked=()) -> None:
    with atomic_write(path, "wb") as handle:
        np.savez(
            handle,
            embeddings=np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32),
            foreground=np.concatenate(masked) if masked else np.zeros((0, 0), np.float32),
            positions=np.asarray(positions, dtype=np.int64),
            failed_positions=np.asarray([p for p, _ in failed], dtype=np.int64),
            failed_errors=np.asarray([e for _, e in failed], dtype=str),
        )


def collect(source: Path, work: Path, chunks: int):
    """The embeddings, foreground embeddings (or None), and catalogue positions of every chunk,
    and the images that failed."""
    vectors, masked, positions, failed = [], [], [], []
    for chunk in range(chunks):
        with np.load(chunk_file(work, chunk)) as data:
            if len(data["positions"]):
                vectors.append(data["embeddings"])
                masked.append(data["foreground"])
                positions += data["positions"].tolist()
            failed += list(
                zip(data["failed_positions"].tolist(), data["failed_errors"].tolist(), strict=True)
            )
    if not positions:
        shown = "; ".join(error for _, error in failed[:3])
        raise DataError(f"{source}: no catalogue image could be read ({shown})")
    for _, error in failed:
        log.warning("skipped %s", error)
    foreground = np.concatenate(masked) if all(len(m) for m in masked) else None
    return np.concatenate(vectors), foreground, positions, failed
