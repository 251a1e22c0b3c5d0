"""`bgbias backgrounds list|fetch`: named background photo sets (the paper's), verified."""

from __future__ import annotations

from ._common import RegistryChoice, add_command, registry_names


def register(subparsers) -> None:
    parser = add_command(subparsers, "backgrounds", help="provision background photo sets")
    actions = parser.add_subparsers(dest="backgrounds_command", metavar="ACTION", required=True)
    add_command(actions, "list", help="known background sets and what is installed").set_defaults(
        func=list_
    )
    fetch = add_command(
        actions,
        "fetch",
        help="download a background set (sha256-checked, resumable) into the cache",
        description="Download every photo of the set from the authors' repository, or copy it "
        "from a local copy with --from DIR (offline); each is checked against the sha256 in "
        "the manifest shipped with bgbias before it is installed. Run again to resume.",
    )
    fetch.add_argument(
        "name",
        action=RegistryChoice,
        names=registry_names("bgbias.data.background_sets.BACKGROUND_SETS"),
        listed_by="bgbias backgrounds list",
        help="background set",
    )
    fetch.add_argument("--from", dest="source", help="a local copy: a folder with val/ and test/")
    fetch.add_argument(
        "--url", help="download URL template with {split} and {name} (another mirror)"
    )
    fetch.set_defaults(func=fetch_)


def list_(args) -> int:
    from ..data.background_sets import describe_background_sets

    print("\n".join(describe_background_sets()))
    return 0


def fetch_(args) -> int:
    from ..data.background_sets import fetch_background_set

    summary = fetch_background_set(args.name, source=args.source, url=args.url)
    print(
        f"{args.name}: {summary['photos']} photos in {summary['folder']} "
        f"({summary['installed']} new, {summary['already_installed']} already there)"
    )
    return 0
