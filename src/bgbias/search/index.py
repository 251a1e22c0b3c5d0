"""A search index on disk and in memory: a vector store of L2-normalised embeddings (inner
product = cosine similarity; faiss files in the folder or a Milvus collection, :mod:`.store`),
the catalogue's items, their thumbnails, the model's provenance.

Folder layout (``manifest.json`` is written last; an index without it never loads)::

    INDEX/index.faiss [foreground.faiss]   INDEX/items.json   INDEX/thumbs/<n>.jpg
    INDEX/manifest.json   (a Milvus index: no .faiss files; the manifest names the collection)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import ConfigError
from ..io import write_json
from .faiss_store import INDEX_TYPES, RECALL_K, RECALL_SAMPLE, recall_at_k
from .fusion import Fusion
from .store import IndexFolderError, VectorStore, normalize_rows, store_class

INDEX_FORMAT = 1
MANIFEST, ITEMS, THUMBS = "manifest.json", "items.json", "thumbs"
__all__ = [  # re-exported: the index types and recall live in .faiss_store
    "INDEX_TYPES",
    "RECALL_K",
    "RECALL_SAMPLE",
    "IndexFolderError",
    "SearchIndex",
    "recall_at_k",
]
PROBE_TOLERANCE = 1e-3  # unit embeddings; ONNX against PyTorch, CPU against CUDA stay far below


def model_probe(embedder) -> list[float]:
    """The unit embedding (D,) of one fixed seeded image: the index records it at build time and
    checks it on load, for every model form (files, code, hub names, random weights)."""
    crop = embedder.recipe.crop
    pixels = torch.rand(1, 3, crop, crop, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        vector = embedder(embedder.recipe.normalization(pixels).to(embedder.device))
    return [round(float(v), 6) for v in normalize_rows(vector.cpu().numpy().astype(np.float32))[0]]


def options_json(options) -> dict[str, Any]:
    """AdapterOptions as the manifest stores them: a weight file's path made absolute."""
    values = dataclasses.asdict(options)
    if values["weights"]:
        values["weights"] = str(Path(values["weights"]).resolve())
    return values


def options_from_json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def write_index_files(
    folder: Path,
    embeddings: np.ndarray,
    items: list[dict[str, Any]],
    model: dict[str, Any],
    index_type: str = "flat",
    extra: dict[str, Any] | None = None,
    foreground: np.ndarray | None = None,
    backend: str = "faiss",
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store the vectors (:mod:`.store`: faiss files, or a Milvus collection), then write
    ``items.json`` and, last, ``manifest.json`` into ``folder``.

    embeddings: (N, D), L2-normalised here; foreground: the same items' foreground vectors, or
    None; items: N dicts with ``id``, ``label`` and ``thumb`` (a file name in
    ``folder/thumbs``); model: its provenance, with ``spec``, the name
    :func:`bgbias.adapters.load_embedder` loads it by; settings: the backend's (``max_memory``,
    Milvus ``uri``). An approximate index type measures its recall@10 against exact search.
    Returns the manifest; if anything fails, what the store wrote outside ``folder`` is
    removed again and no manifest exists."""
    vectors = {"full": normalize_rows(embeddings)}
    if foreground is not None:
        vectors["foreground"] = normalize_rows(foreground)
    store = store_class(backend)
    section = store.write(folder, vectors, items, {"index_type": index_type} | (settings or {}))
    try:
        write_json(folder / ITEMS, items)
        manifest = {
            "format": INDEX_FORMAT,
            "bgbias_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "count": len(items),
            "dim": int(vectors["full"].shape[1]),
            "model": model,
            "index": section,
        } | (extra or {})
        write_json(folder / MANIFEST, manifest)  # last: only now does the folder load
    except BaseException:
        store.discard(section)
        raise
    return manifest


class SearchIndex:
    """A built index folder. ``search(queries, k, fusion)`` -> (scores, positions), best
    first; ``store``: its vectors (:class:`bgbias.search.store.VectorStore`)."""

    def __init__(self, path: Path, manifest: dict[str, Any], items: list[dict], store):
        self.path = path
        self.manifest = manifest
        self.items = items
        self.store: VectorStore = store
        self.positions = {item["id"]: n for n, item in enumerate(items)}

    @classmethod
    def load(cls, path: str | os.PathLike) -> SearchIndex:
        path = Path(path)
        manifest_file = path / MANIFEST
        if not path.is_dir():
            raise IndexFolderError(f"{path}: index folder not found")
        if not manifest_file.is_file():
            raise IndexFolderError(
                f"{path}: not a complete index (no {MANIFEST}; an interrupted build resumes "
                "when `bgbias index` runs again)"
            )
        try:
            manifest = json.loads(manifest_file.read_text())
            items = json.loads((path / ITEMS).read_text())
        except (OSError, ValueError) as exc:
            raise IndexFolderError(f"{path}: damaged index ({exc})") from None
        if not isinstance(manifest, dict) or not isinstance(items, list):
            raise IndexFolderError(
                f"{path}: damaged index ({MANIFEST} must hold an object, {ITEMS} a list)"
            )
        if manifest.get("format") != INDEX_FORMAT:
            raise IndexFolderError(
                f"{path}: index format {manifest.get('format')}; this bgbias reads {INDEX_FORMAT}"
            )
        counts = [manifest.get(key) for key in ("dim", "count")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise IndexFolderError(
                f"{path}: damaged index ({MANIFEST} needs whole numbers 'dim' and 'count', got "
                f"{counts[0]!r} and {counts[1]!r})"
            )
        section = manifest.get("index") or {}
        store = store_class(section.get("backend", "faiss")).open(path, section)
        if store.dim != manifest.get("dim"):
            raise IndexFolderError(
                f"{path}: the store holds {store.dim}-d vectors, the manifest says "
                f"{manifest.get('dim')}-d; rebuild the index with `bgbias index`"
            )
        if not (store.count == len(items) == manifest.get("count")):
            raise IndexFolderError(
                f"{path}: damaged index ({store.count} vectors, {len(items)} items, "
                f"manifest says {manifest.get('count')})"
            )
        return cls(path, manifest, items, store)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def dim(self) -> int:
        return self.store.dim

    @property
    def fields(self) -> tuple[str, ...]:
        return self.store.fields

    def __len__(self) -> int:
        return len(self.items)

    def search(
        self,
        queries: np.ndarray | torch.Tensor | dict[str, np.ndarray | torch.Tensor],
        k: int = 10,
        fusion: str | Fusion = "full",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Query embeddings, (Q, D) (full vectors) or per field ``{"full": ..., "foreground":
        ...}`` -> cosine (or fused) scores (Q, k') and item positions (Q, k'), best first, with
        k' = min(k, len(self)); position -1 where an approximate index found fewer."""
        if not isinstance(queries, dict):
            queries = {"full": queries}
        arrays = {f: normalize_rows(q) for f, q in queries.items()}
        for field, array in arrays.items():
            if array.ndim != 2 or array.shape[1] != self.dim:
                raise ConfigError(
                    f"{self.path}: {field} queries must be (Q, {self.dim}), got "
                    f"{tuple(array.shape)}"
                )
        return self.store.search(arrays, k, fusion)

    def position(self, item_id: str) -> int:
        try:
            return self.positions[item_id]
        except KeyError:
            raise KeyError(f"no item {item_id!r} in index {self.name}") from None

    def embedding(self, position: int, field: str = "full") -> np.ndarray:
        """The stored (unit) embedding of the item at ``position``: (1, D)."""
        return self.store.embedding(position, field)

    def thumbnail_path(self, position: int) -> Path | None:
        """Item ``position``'s thumbnail file, or None where items.json names none or one
        outside ``INDEX/thumbs`` (``../``, an absolute path, a link out: a tampered file)."""
        name = self.items[position].get("thumb") if isinstance(self.items[position], dict) else None
        if not isinstance(name, str) or not name:
            return None
        folder = (self.path / THUMBS).resolve()
        path = (folder / name).resolve()
        return path if path.parent == folder else None

    @property
    def model_spec(self) -> str:
        return self.manifest["model"]["spec"]

    def load_embedder(self, options=None):
        """The model the index was built with, with the options it was built with (unless
        ``options`` overrides them). A model that no longer gives the index's embeddings (a
        retrained checkpoint, an ``--untrained`` model's new random weights, edited code)
        raises ConfigError: its queries would be compared with another model's vectors."""
        from ..adapters import AdapterOptions, load_embedder

        model = self.manifest["model"]
        if options is None:
            options = AdapterOptions(**options_from_json(model.get("options") or {}))
        embedder = load_embedder(self.model_spec, options)
        built, now = model.get("sha256"), embedder.describe().get("sha256")
        rebuild = "rebuild the index with `bgbias index`"
        if built and now and built != now:
            raise ConfigError(
                f"{self.path}: built with {self.model_spec} of sha256 {built[:12]}..., which is "
                f"now {now[:12]}...; {rebuild}"
            )
        if "probe" in model:
            drift = float(np.abs(np.asarray(model["probe"]) - model_probe(embedder)).max())
            if drift > PROBE_TOLERANCE:
                raise ConfigError(
                    f"{self.path}: {self.model_spec} no longer gives the embeddings the index was "
                    f"built with (probe differs by {drift:.3g}; random --untrained weights, or a "
                    f"changed model or option); {rebuild}"
                )
        return embedder
