"""A search index on disk and in memory: a faiss index of L2-normalised embeddings (inner
product = cosine similarity), the catalogue's items, their thumbnails, the model's provenance.

Folder layout (``manifest.json`` is written last; an index without it never loads)::

    INDEX/index.faiss    INDEX/items.json    INDEX/thumbs/<n>.jpg    INDEX/manifest.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import BgbiasError, ConfigError
from ..io import write_json
from ..registry import Registry

INDEX_FORMAT = 1
MANIFEST, ITEMS, FAISS_FILE, THUMBS = "manifest.json", "items.json", "index.faiss", "thumbs"
RECALL_K, RECALL_SAMPLE = 10, 1000
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


def _options_from_json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


class IndexFolderError(BgbiasError):
    """An index folder that is missing, incomplete or damaged."""


@dataclass(frozen=True)
class IndexType:
    """``build(embeddings (N, D) float32, unit rows) -> (faiss index, parameters)``."""

    name: str
    build: Callable[[np.ndarray], tuple[Any, dict[str, Any]]]
    exact: bool
    description: str


def _flat(embeddings: np.ndarray):
    import faiss

    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(embeddings)
    return index, {}


def _ivf(embeddings: np.ndarray):
    import faiss

    n, dim = embeddings.shape
    # faiss wants >= 39 training points per list; 4 sqrt(N) lists is its usual guidance
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(embeddings)
    index.add(embeddings)
    index.nprobe = max(1, min(nlist, 16))
    return index, {"nlist": nlist, "nprobe": index.nprobe}


def _hnsw(embeddings: np.ndarray):
    import faiss

    index = faiss.index_factory(embeddings.shape[1], "HNSW32", faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(embeddings)
    index.hnsw.efSearch = 64
    return index, {"M": 32, "efConstruction": 80, "efSearch": 64}


INDEX_TYPES: Registry[IndexType] = Registry("index type")
for _entry in (
    IndexType("flat", _flat, True, "exact inner-product search (faiss IndexFlatIP)"),
    IndexType("ivf", _ivf, False, "inverted lists, 4 sqrt(N) of them, 16 probed"),
    IndexType("hnsw", _hnsw, False, "HNSW graph, 32 links, efSearch 64"),
):
    INDEX_TYPES.register(_entry.name, _entry)


def normalize_rows(embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, D) -> float32 rows of unit length (zero rows stay zero)."""
    array = np.ascontiguousarray(
        embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else embeddings,
        dtype=np.float32,
    )
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def recall_at_k(index, embeddings: np.ndarray, k: int = RECALL_K, sample: int = RECALL_SAMPLE):
    """Mean share of the exact top-``k`` that ``index`` also returns, over a seeded sample of the
    indexed embeddings as queries."""
    import faiss

    rows = np.random.default_rng(0).permutation(len(embeddings))[:sample]
    queries = embeddings[rows]
    k = min(k, len(embeddings))
    exact = faiss.IndexFlatIP(embeddings.shape[1])
    exact.add(embeddings)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = [len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True)]
    return float(np.mean(hits) / k), len(rows)


def write_index_files(
    folder: Path,
    embeddings: np.ndarray,
    items: list[dict[str, Any]],
    model: dict[str, Any],
    index_type: str = "flat",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``index.faiss``, ``items.json`` and, last, ``manifest.json`` into ``folder``.

    embeddings: (N, D), L2-normalised here; items: N dicts with ``id``, ``label`` and ``thumb``
    (a file name in ``folder/thumbs``); model: its provenance, with ``spec``, the name
    :func:`bgbias.adapters.load_embedder` loads it by. An approximate index type measures its
    recall@10 against exact search. Returns the manifest."""
    import faiss

    kind = INDEX_TYPES.get(index_type)
    embeddings = normalize_rows(embeddings)
    if len(items) != len(embeddings):
        raise ConfigError(f"{len(items)} items but {len(embeddings)} embeddings")
    index, params = kind.build(embeddings)
    recall = None
    if not kind.exact:
        value, sample = recall_at_k(index, embeddings)
        recall = {"recall_at_10": round(value, 4), "queries": sample}
    faiss.write_index(index, str(folder / FAISS_FILE))
    write_json(folder / ITEMS, items)
    manifest = {
        "format": INDEX_FORMAT,
        "bgbias_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "count": len(items),
        "dim": int(embeddings.shape[1]),
        "model": model,
        "index": {"type": kind.name, "exact": kind.exact, "params": params, "recall": recall},
    } | (extra or {})
    write_json(folder / MANIFEST, manifest)  # last: only now does the folder load as an index
    return manifest


class SearchIndex:
    """A built index folder. ``search(queries, k)`` -> (scores, positions), best first."""

    def __init__(self, path: Path, manifest: dict[str, Any], items: list[dict], index):
        self.path = path
        self.manifest = manifest
        self.items = items
        self.index = index
        self.positions = {item["id"]: n for n, item in enumerate(items)}

    @classmethod
    def load(cls, path: str | os.PathLike) -> SearchIndex:
        import faiss

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
            index = faiss.read_index(str(path / FAISS_FILE))
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexFolderError(f"{path}: damaged index ({exc})") from None
        if not isinstance(manifest, dict) or not isinstance(items, list):
            raise IndexFolderError(
                f"{path}: damaged index ({MANIFEST} must hold an object, {ITEMS} a list)"
            )
        if manifest.get("format") != INDEX_FORMAT:
            raise IndexFolderError(
                f"{path}: index format {manifest.get('format')}; this bgbias reads {INDEX_FORMAT}"
            )
        if not (index.ntotal == len(items) == manifest.get("count")):
            raise IndexFolderError(
                f"{path}: damaged index ({index.ntotal} vectors, {len(items)} items, "
                f"manifest says {manifest.get('count')})"
            )
        if hasattr(index, "make_direct_map"):  # IVF: reconstruct() by position
            index.make_direct_map()
        return cls(path, manifest, items, index)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return len(self.items)

    def search(
        self, queries: np.ndarray | torch.Tensor, k: int = 10
    ) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) query embeddings -> cosine scores (Q, k') and item positions (Q, k'), best
        first, with k' = min(k, len(self)); position -1 where an approximate index found fewer."""
        queries = normalize_rows(queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ConfigError(
                f"{self.path}: queries must be (Q, {self.dim}), got {tuple(queries.shape)}"
            )
        return self.index.search(queries, min(k, len(self)))

    def position(self, item_id: str) -> int:
        try:
            return self.positions[item_id]
        except KeyError:
            raise KeyError(f"no item {item_id!r} in index {self.name}") from None

    def embedding(self, position: int) -> np.ndarray:
        """The stored (unit) embedding of the item at ``position``: (1, D)."""
        return self.index.reconstruct(int(position))[None, :]

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
            options = AdapterOptions(**_options_from_json(model.get("options") or {}))
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
