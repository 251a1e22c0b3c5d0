"""The Milvus store: one collection per index, per item its position (primary key), its full
and foreground vectors, id, label and thumbnail (base64 JPEG), so another Milvus client can use
the collection without the index folder. The folder keeps the manifest, items and thumbnails,
and the manifest names the URI and collection, so ``bgbias serve DIR`` works as for faiss.

URIs: a file path ending in ``.db`` is Milvus Lite, the same engine embedded in this process
(tests, laptops; one process at a time per file); ``http://HOST:PORT`` a Milvus standalone or
distributed server. Fusion over both vectors runs in Milvus (``hybrid_search`` with
``RRFRanker`` / ``WeightedRanker``, :meth:`bgbias.search.fusion.Fusion.milvus_ranker`).

A build writes a new collection under a fresh name (``<index name>_<8 hex>``): the index's old
manifest keeps naming the old collection until the new manifest replaces it, so a failed or
killed build never leaves a manifest over a half-filled collection; the failed build's
collection is dropped, and so is the old one once the new index is installed.
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BgbiasError, ConfigError
from .faiss_store import INDEX_TYPES, RECALL_K, RECALL_SAMPLE
from .store import INDEX_DISTANCE, IndexFolderError, VectorStore, check_vectors

INSERT_ROWS = 1000  # rows per insert call: far below gRPC's 64 MB message limit
TEXT_MAX = 65_535  # Milvus's VARCHAR limit
TIMEOUT_S = 30
SERVER_SCHEMES = ("http://", "https://", "tcp://", "unix:")
MILVUS_PARAMS = {  # build parameters of the Milvus index types bgbias uses
    "FLAT": {},
    "IVF_FLAT": {"nlist": 1024},
    "HNSW": {"M": 32, "efConstruction": 80},
    "IVF_PQ": {"nlist": 1024, "m": 16, "nbits": 8},
}
SEARCH_PARAMS = {"IVF_FLAT": {"nprobe": 16}, "IVF_PQ": {"nprobe": 16}, "HNSW": {"ef": 64}}


class MilvusError(BgbiasError):
    """Milvus unreachable, or refusing an operation."""


def resolve_uri(uri: str) -> str:
    """A server URI as given; a Milvus Lite file made absolute (the manifest must find it from
    any working folder). ConfigError for anything else."""
    if uri.startswith(SERVER_SCHEMES):
        return uri
    if not uri.endswith(".db"):
        raise ConfigError(
            f"--milvus {uri!r}: expected a Milvus Lite file ending in .db, or an http:// URI "
            "of a Milvus server"
        )
    return str(Path(uri).expanduser().resolve())


def connect(uri: str):
    """A MilvusClient for ``uri``; one line naming the URI when it cannot be reached."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ConfigError(
            "--milvus needs pymilvus: pip install 'bgbias[milvus]' (Milvus Lite included)"
        ) from None
    if not uri.startswith(SERVER_SCHEMES):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return MilvusClient(uri, timeout=TIMEOUT_S)
    except Exception as exc:  # pymilvus raises its own classes, and grpc/OS errors beneath
        raise MilvusError(f"{uri}: cannot reach Milvus ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:300]


def collection_name(index_name: str) -> str:
    """``<index name>_<8 hex>`` in the characters Milvus allows (letters, digits, _)."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", index_name).strip("_") or "index"
    if not (base[0].isalpha() or base[0] == "_"):
        base = f"bgbias_{base}"
    return f"{base[:200]}_{uuid.uuid4().hex[:8]}"


def _thumbnail(folder: Path, item: dict[str, Any]) -> str:
    path = folder / "thumbs" / item.get("thumb", "")
    if not item.get("thumb") or not path.is_file():
        return ""
    text = base64.b64encode(path.read_bytes()).decode()
    return text if len(text) <= TEXT_MAX else ""  # an outsized thumbnail stays in the folder


class MilvusStore(VectorStore):
    backend = "milvus"

    def __init__(self, client, uri: str, section: dict[str, Any], dim: int, count: int):
        self.client = client
        self.uri = uri
        self.section = section
        self.collection = section["collection"]
        self.fields = tuple(section["fields"])
        self.dim = dim
        self.count = count
        self.search_params = {
            "metric_type": "IP",
            "params": SEARCH_PARAMS.get(section.get("milvus_index", "FLAT"), {}),
        }

    @classmethod
    def write(cls, folder, vectors, items, settings) -> dict[str, Any]:
        check_vectors(vectors, items)
        if "uri" not in settings:
            raise ConfigError("a Milvus index needs --milvus URI")
        uri = resolve_uri(settings["uri"])
        kind = INDEX_TYPES.get(settings.get("index_type", "flat"))
        client = connect(uri)
        name = collection_name(settings.get("name") or folder.name)
        section = {
            "backend": cls.backend,
            "uri": uri,
            "collection": name,
            "type": kind.name,
            "milvus_index": kind.milvus,
            "exact": kind.exact,
            "distance": INDEX_DISTANCE,
            "fields": list(vectors),
            "params": MILVUS_PARAMS[kind.milvus],
            "recall": None,
            "bytes": None,  # Milvus does not report a collection's size
        }
        try:
            cls._create(client, name, vectors, items, kind.milvus)
            cls._insert(client, name, folder, vectors, items)
            # seal the segments: searches of unsealed rows ran ~10x slower (192 against 20 ms
            # for one query over 5 k items in Milvus Lite)
            client.flush(name)
            store = cls(client, uri, section, vectors["full"].shape[1], len(items))
            if store._count() != len(items):
                raise MilvusError(
                    f"{uri}: collection {name} holds {store._count()} rows after "
                    f"inserting {len(items)}"
                )
            if not kind.exact:
                section["recall"] = store._recall(vectors["full"])
        except BaseException as exc:
            _drop(client, name)
            if isinstance(exc, BgbiasError) or not isinstance(exc, Exception):
                raise
            raise MilvusError(
                f"{uri}: building collection {name} failed ({_reason(exc)})"
            ) from None
        return section

    @staticmethod
    def _create(client, name: str, vectors: dict, items: list, milvus_index: str) -> None:
        from pymilvus import DataType, MilvusClient

        dim = int(vectors["full"].shape[1])
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("position", DataType.INT64, is_primary=True)
        for field in vectors:
            schema.add_field(field, DataType.FLOAT_VECTOR, dim=dim)
        longest = max(len(str(item["id"]).encode()) for item in items)
        schema.add_field("id", DataType.VARCHAR, max_length=min(TEXT_MAX, max(64, longest)))
        schema.add_field("label", DataType.VARCHAR, max_length=1024)
        schema.add_field("thumbnail", DataType.VARCHAR, max_length=TEXT_MAX)
        index_params = client.prepare_index_params()
        for field in vectors:
            index_params.add_index(
                field_name=field,
                index_type=milvus_index,
                metric_type="IP",
                params=MILVUS_PARAMS[milvus_index],
            )
        client.create_collection(name, schema=schema, index_params=index_params)

    @staticmethod
    def _insert(client, name: str, folder: Path, vectors: dict, items: list) -> None:
        for start in range(0, len(items), INSERT_ROWS):
            rows = []
            for position in range(start, min(start + INSERT_ROWS, len(items))):
                item = items[position]
                row = {f: vectors[f][position] for f in vectors}
                rows.append(
                    row
                    | {
                        "position": position,
                        "id": str(item["id"]),
                        "label": str(item.get("label") or "")[:1024],
                        "thumbnail": _thumbnail(folder, item),
                    }
                )
            client.insert(name, rows)

    def _recall(self, embeddings: np.ndarray) -> dict[str, Any]:
        """Recall@10 of the collection's approximate index against exact search."""
        import faiss

        rows = np.random.default_rng(0).permutation(len(embeddings))[:RECALL_SAMPLE]
        k = min(RECALL_K, len(embeddings))
        exact = faiss.IndexFlatIP(embeddings.shape[1])
        exact.add(embeddings)
        _, truth = exact.search(embeddings[rows], k)
        _, found = self.search_field("full", embeddings[rows], k)
        hits = [len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True)]
        return {"recall_at_10": round(float(np.mean(hits) / k), 4), "queries": len(rows)}

    @classmethod
    def open(cls, folder, section) -> MilvusStore:
        uri, name = section["uri"], section["collection"]
        client = connect(uri)
        try:
            if not client.has_collection(name):
                raise IndexFolderError(
                    f"{folder}: its Milvus collection {name} is not at {uri}; rebuild the "
                    "index with `bgbias index --milvus`"
                )
            described = client.describe_collection(name)
            dims = {
                f["name"]: int(f["params"]["dim"])
                for f in described["fields"]
                if f["name"] in section["fields"]
            }
            client.load_collection(name)
        except BgbiasError:
            raise
        except Exception as exc:
            raise MilvusError(f"{uri}: cannot open collection {name} ({_reason(exc)})") from None
        if set(dims) != set(section["fields"]) or len(set(dims.values())) != 1:
            raise IndexFolderError(
                f"{folder}: Milvus collection {name} at {uri} holds vector fields {dims}, "
                f"not the index's {section['fields']}; rebuild the index"
            )
        store = cls(client, uri, section, next(iter(dims.values())), 0)
        store.count = store._count()
        return store

    def _count(self) -> int:
        rows = self.client.query(self.collection, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise MilvusError(
                f"{self.uri}: {what} in collection {self.collection} failed ({_reason(exc)})"
            ) from None

    @staticmethod
    def _arrays(hits: list, depth: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full((len(hits), depth), -np.inf, dtype=np.float32)
        positions = np.full((len(hits), depth), -1, dtype=np.int64)
        for row, found in enumerate(hits):
            for column, hit in enumerate(list(found)[:depth]):
                positions[row, column] = int(hit["position"])
                scores[row, column] = float(hit["distance"])
        return scores, positions

    def search_field(self, field, queries, depth):
        hits = self._call(
            "search",
            self.client.search,
            self.collection,
            data=[row.tolist() for row in queries],
            anns_field=field,
            limit=depth,
            search_params=self.search_params,
            output_fields=["position"],
        )
        return self._arrays(hits, depth)

    def search(self, queries, k, fusion="full"):
        """One field: a plain search. Both: Milvus's hybrid search with the fusion's ranker,
        each field searched as deep as the faiss store searches it."""
        from pymilvus import AnnSearchRequest

        from .fusion import candidates, parse_fusion

        fusion = parse_fusion(fusion)
        if len(fusion.fields) == 1:
            return super().search(queries, k, fusion)
        self.check_fields(fusion)
        k = min(k, self.count)
        depth = candidates(k, fusion, self.count)
        requests = [
            AnnSearchRequest(
                data=[row.tolist() for row in self._checked(queries[field])],
                anns_field=field,
                param=self.search_params,
                limit=depth,
            )
            for field in fusion.fields
        ]
        hits = self._call(
            "hybrid search",
            self.client.hybrid_search,
            self.collection,
            requests,
            fusion.milvus_ranker(),
            limit=k,
            output_fields=["position"],
        )
        return self._arrays(hits, k)

    def embedding(self, position, field="full"):
        rows = self._call(
            "get", self.client.get, self.collection, ids=[int(position)], output_fields=[field]
        )
        return np.asarray(rows[0][field], dtype=np.float32)[None, :]

    @classmethod
    def discard(cls, section: dict[str, Any]) -> None:
        """Drop the collection a manifest section names (a failed or replaced build's)."""
        try:
            client = connect(section["uri"])
        except BgbiasError:
            return
        _drop(client, section["collection"])


def _drop(client, name: str) -> None:
    try:
        if client.has_collection(name):
            client.drop_collection(name)
    except Exception:  # cleanup after another failure: that failure is the one to report
        pass
