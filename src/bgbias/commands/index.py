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
from ._launch import add_launch_options, launch_options

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
        "appears only when complete. With --shards N the catalogue is embedded in N shards "
        "(--launcher local: one after another, then merged; slurm: one job array, then "
        "`bgbias index merge OUT` writes the index once the jobs have ended).",
        usage="%(prog)s [options] MODEL CATALOGUE --out OUT\n       %(prog)s merge OUT",
    )
    parser.add_argument(
        "model",
        help="a bgbias checkpoint or any model form (`bgbias list model-forms`); or `merge`: write "
        "the index OUT from its finished shards",
    )
    add_model_options(parser)
    parser.add_argument("catalogue", help="image folder, dataset folder or CSV file (merge: OUT)")
    parser.add_argument("--out", help="index folder to write (required)")
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
        "--rerank",
        type=int_at_least(0),
        metavar="R",
        help="ivfpq: re-score the codes' best k x R candidates with the exact vectors, kept on "
        "disk beside the index and memory-mapped (default 10: recall@10 ~0.99 at 1/16 of flat's "
        "memory; 0: codes only, no vectors file)",
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
    parser.add_argument(
        "--shards",
        type=int_at_least(1),
        metavar="N",
        help="embed in N shards, each a job of --launcher; a rerun launches only the shards "
        "not finished",
    )
    add_launch_options(parser, task="shard")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..search.build import build_index

    if args.model == "merge":
        return _merge(args)
    if not args.out:
        raise ConfigError("name the index folder to write: --out OUT")
    if args.shards is not None or args.launcher != "local":
        return _run_shards(args)
    manifest = build_index(
        args.model,
        args.catalogue,
        args.out,
        **_settings(args),
        options=adapter_options(args),
    )
    _print_index(args.out, manifest)
    return 0


def _settings(args) -> dict:
    return dict(
        index_type=args.index_type,
        split=args.split,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        thumb_size=args.thumb_size,
        device=args.device,
        workers=args.workers,
        foreground=args.foreground,
        fill=args.fill,
        milvus=args.milvus,
        max_memory=args.max_memory,
        rerank=args.rerank,
    )


def _run_shards(args) -> int:
    from ..search.shards import launch_index_shards

    built = launch_index_shards(
        args.model,
        args.catalogue,
        args.out,
        args.shards or 1,
        args.launcher,
        launch_options(args),
        adapter=adapter_options(args),
        **_settings(args),
    )
    run = built.run
    if run.finished_before:
        print(f"{len(run.finished_before)} of {run.shards} shard(s) already finished")
    if run.jobs:
        shards = ", ".join(str(k) for k in run.launched)
        print(
            f"submitted shard(s) {shards} of {run.shards} as SLURM job(s) {', '.join(run.jobs)} "
            f"(logs in {built.submitit}); when they have ended: bgbias index merge {args.out}"
        )
    elif built.manifest is not None:
        _print_index(args.out, built.manifest)
    else:
        print(f"all {run.shards} shard(s) finished; next: bgbias index merge {args.out}")
    return 0


def _merge(args) -> int:
    from ..errors import ConfigError
    from ..search.shards import merge_index

    out = args.out or args.catalogue
    if args.out and args.catalogue != args.out:
        raise ConfigError(f"bgbias index merge OUT: got {args.catalogue} and --out {args.out}")
    device = None if args.device == "auto" else args.device
    _print_index(out, merge_index(out, device=device))
    return 0


def _print_index(out, manifest) -> None:
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
    if index.get("rerank"):
        size += (
            f" (+ {index['exact_vectors_bytes'] / 2**20:.1f} MB of exact vectors on disk, "
            f"re-ranking {index['rerank']}x candidates)"
        )
    vectors = " (full and foreground vectors)" if "foreground" in index["fields"] else ""
    print(
        f"wrote {out}: {manifest['count']} items, {manifest['dim']}-d{vectors}, "
        f"{index['type']} index{where}{size}{quality}; {build['images_per_second']} images/s"
        + (
            f"; {len(skipped)} unreadable image(s) skipped (listed in manifest.json)"
            if skipped
            else ""
        )
    )
