"""`bgbias serve`: a search page and JSON API over one or two indexes."""

from __future__ import annotations

from ._common import (
    MASK_MODELS,
    RegistryChoice,
    add_command,
    add_device,
    add_fill,
    int_at_least,
    non_negative_number,
    positive_number,
)


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "serve",
        help="serve a search page and JSON API over one or two indexes",
        description="Open http://HOST:PORT/ to search by photo; two indexes (say, a base and a "
        "BGAugment model) answer side by side. The API's schema is at /docs. Needs "
        "pip install 'bgbias[serve]'.",
    )
    parser.add_argument(
        "indexes", nargs="+", metavar="INDEX", help="index folders (`bgbias index`)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (others than 127.0.0.1 are reachable)"
    )
    parser.add_argument("--port", type=int_at_least(1, 65535), default=8000, help="port")
    parser.add_argument(
        "--mask-model",
        default="u2netp",
        action=RegistryChoice,
        names=MASK_MODELS,
        listed_by="bgbias list mask-models",
        help="mask model of the remove-background switch",
    )
    add_fill(parser)
    parser.add_argument(
        "--max-upload-mb",
        type=positive_number,
        default=20.0,
        help="largest upload (request body) in MB",
    )
    parser.add_argument(
        "--max-megapixels", type=positive_number, default=50.0, help="largest photo in megapixels"
    )
    parser.add_argument(
        "--workers", type=int_at_least(1), default=2, help="uploads decoded at once"
    )
    parser.add_argument(
        "--batch-window-ms",
        type=non_negative_number,
        default=5.0,
        help="how long a batch of queries waits for others still decoding (a lone query "
        "never waits)",
    )
    parser.add_argument(
        "--max-batch", type=int_at_least(1), default=16, help="most queries in one batch"
    )
    parser.add_argument(
        "--forward-batch",
        type=int_at_least(1),
        default=4,
        help="most images in one forward pass of the embedding model (a batch of queries "
        "takes as many passes as it needs)",
    )
    add_device(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..search.service import ServeOptions

    options = ServeOptions(
        mask_model=args.mask_model,
        fill=args.fill,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        workers=args.workers,
        device=args.device,
        batch_window_ms=args.batch_window_ms,
        max_batch=args.max_batch,
        forward_batch=args.forward_batch,
    )
    from ..search.server import serve  # needs the serve extra: a clear error if missing

    serve(args.indexes, host=args.host, port=args.port, options=options)
    return 0
