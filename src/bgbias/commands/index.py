"""`bgbias index`: embed a catalogue with a model into a search index (resumable)."""

from __future__ import annotations

import argparse
import re

from ._common import (
    MASK_MODELS,
    RegistryChoice,
    adapter_options,
    add_command,
    add_device,
    add_fill,
    add_model_options,
    int_at_least,
    registry_names,
)

UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_size(text: str) -> int:
    """An argparse type: ``64MB``, ``1.5G``, ``500k`` or a byte count (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 64MB or 2G, got {text!r}")
    return int(float(match[1]) * UNITS[match[2]])


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "index",
        help="embed a catalogue of images into a search index (faiss), resumable",
        description="CATALOGUE: a folder (ROOT/<label>/<image>, or images directly in it), a "
        "bgbias dataset folder, or a CSV with columns path[,id][,label]. Writes OUT/ (faiss "
        "index, items, thumbnails, manifest). A killed build resumes where it stopped; OUT "
        "appears only when complete.",
    )
    parser.add_argument(
        "model", help="a bgbias checkpoint or any model form (`bgbias list model-forms`)"
    )
    add_model_options(parser)
    parser.add_argument("catalogue", help="image folder, dataset folder or CSV file")
    parser.add_argument("--out", required=True, help="index folder to write")
    parser.add_argument(
        "--index",
        dest="index_type",
        default="flat",
        action=RegistryChoice,
        names=registry_names("bgbias.search.index.INDEX_TYPES"),
        listed_by="bgbias list index-types",
        help="flat: exact; ivf, hnsw, ivfpq (compressed): approximate, for large catalogues "
        "(recall@10 reported)",
    )
    parser.add_argument(
        "--max-memory",
        type=byte_size,
        metavar="SIZE",
        help="ivfpq: the index's size budget (64MB, 2G; default 1/16 of an exact index)",
    )
    parser.add_argument(
        "--foreground",
        nargs="?",
        const="u2netp",
        action=RegistryChoice,
        names=MASK_MODELS,
        listed_by="bgbias list mask-models",
        metavar="MASK_MODEL",
        help="also store each item's foreground vector (background removed by MASK_MODEL, "
        "u2netp when none is named), for `--fusion` search",
    )
    add_fill(parser)
    parser.add_argument(
        "--milvus",
        metavar="URI",
        help="store the vectors in a Milvus collection: a file ending in .db (Milvus Lite, "
        "embedded) or http://HOST:PORT (a Milvus server); OUT keeps the manifest, items and "
        "thumbnails. Always stores foreground vectors too (--foreground, default u2netp)",
    )
    parser.add_argument("--split", help="only this split's classes (a bgbias dataset folder)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=32, help="images per batch")
    parser.add_argument(
        "--chunk-size", type=int_at_least(1), default=512, help="images per resumable chunk"
    )
    parser.add_argument(
        "--thumb-size", type=int_at_least(16), default=128, help="thumbnail side in pixels"
    )
    parser.add_argument("--workers", type=int_at_least(1), default=2, help="decoding threads")
    add_device(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..search.build import build_index

    manifest = build_index(
        args.model,
        args.catalogue,
        args.out,
        index_type=args.index_type,
        split=args.split,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        thumb_size=args.thumb_size,
        device=args.device,
        workers=args.workers,
        options=adapter_options(args),
        foreground=args.foreground,
        fill=args.fill,
        milvus=args.milvus,
        max_memory=args.max_memory,
    )
    build, index = manifest["build"], manifest["index"]
    recall = index["recall"]
    quality = (
        f", recall@10 {recall['recall_at_10']:.4f} against exact search ({recall['queries']} "
        "queries)"
        if recall
        else " (exact)"
    )
    skipped = manifest["catalogue"]["skipped"]
    where = f" in Milvus collection {index['collection']}" if index.get("collection") else ""
    size = f", {index['bytes'] / 2**20:.1f} MB" if index.get("bytes") else ""
    vectors = " (full and foreground vectors)" if "foreground" in index["fields"] else ""
    print(
        f"wrote {args.out}: {manifest['count']} items, {manifest['dim']}-d{vectors}, "
        f"{index['type']} index{where}{size}{quality}; {build['images_per_second']} images/s"
        + (
            f"; {len(skipped)} unreadable image(s) skipped (listed in manifest.json)"
            if skipped
            else ""
        )
    )
    return 0
