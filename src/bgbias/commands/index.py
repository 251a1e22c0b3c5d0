"""`bgbias index`: embed a catalogue with a model into a search index (resumable)."""

from __future__ import annotations

from ._common import (
    RegistryChoice,
    adapter_options,
    add_command,
    add_device,
    add_model_options,
    int_at_least,
    registry_names,
)


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
        "model", help="a bgbias checkpoint or any model form (`bgbias list models`)"
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
        help="flat: exact; ivf, hnsw: approximate, for large catalogues (recall@10 reported)",
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
    print(
        f"wrote {args.out}: {manifest['count']} items, {manifest['dim']}-d, {index['type']} "
        f"index{quality}; {build['images_per_second']} images/s"
        + (
            f"; {len(skipped)} unreadable image(s) skipped (listed in manifest.json)"
            if skipped
            else ""
        )
    )
    return 0
