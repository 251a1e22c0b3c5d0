"""`bgbias data generate|check|import|split`: datasets in the generic folder layout."""

from __future__ import annotations

import json

from ..data.benchmark_config import BenchmarkConfig
from ._common import RegistryChoice, add_command, fraction, int_at_least

BENCHMARK_OPTIONS = {
    "image_size": (int_at_least(16), "image side in pixels"),
    "train_classes": (int_at_least(1), "classes of the train split"),
    "val_classes": (int_at_least(1), "classes of the val split"),
    "test_classes": (int_at_least(1), "classes of the test split"),
    "images_per_class": (int_at_least(2), "images of every class"),
    "home_probability": (fraction, "chance that an image shows its class's home scene"),
    "seed": (int, "seed of every drawn pixel"),
}


def register(subparsers) -> None:
    data = add_command(subparsers, "data", help="generate, import, check and split datasets")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    gen = add_command(actions, "generate", help="write the generated benchmark to OUT")
    gen.add_argument("out", help="output folder")
    defaults = BenchmarkConfig()
    for name, (kind, text) in BENCHMARK_OPTIONS.items():
        gen.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name), help=text
        )
    gen.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    gen.set_defaults(func=generate)

    check = add_command(actions, "check", help="report split sizes and every problem of ROOT")
    check.add_argument("root", help="dataset folder")
    check.add_argument(
        "--quick",
        action="store_true",
        help="read file headers only (skips the decode that finds truncated files)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=check_)

    imp = add_command(
        actions,
        "import",
        help="lay out Cars196 / CUB-200-2011 / SOP from their official files",
        description="SOURCE: the official archives (extracted into ROOT/images) or extracted "
        "folders (linked, not copied). Writes ROOT/index.csv and ROOT/splits.json with the "
        "paper's class-disjoint splits.",
    )
    imp.add_argument(
        "name",
        action=RegistryChoice,
        names=_importable,
        listed_by="bgbias list datasets",
        help="dataset with official files to read",
    )
    imp.add_argument("sources", nargs="+", metavar="SOURCE", help="archives or folders")
    imp.add_argument("--root", required=True, help="dataset folder to write")
    imp.set_defaults(func=import_)

    split = add_command(actions, "split", help="write ROOT/splits.json by whole classes")
    split.add_argument("root", help="dataset folder")
    split.add_argument("--train", type=fraction, default=0.5, help="share of classes")
    split.add_argument("--val", type=fraction, default=0.1, help="share of classes")
    split.add_argument("--test", type=fraction, default=0.4, help="share of classes")
    split.add_argument(
        "--seed", type=int, default=None, help="shuffle classes with this seed (else sorted)"
    )
    split.set_defaults(func=split_)


def _importable() -> list[str]:
    from ..data.registry import DATASETS

    return [name for name in DATASETS if DATASETS.get(name).layouts]


def generate(args) -> int:
    from ..data.generate import generate_benchmark
    from ..progress import progress_callback

    config = BenchmarkConfig(**{k: getattr(args, k) for k in BENCHMARK_OPTIONS})
    update, close = progress_callback("generating", unit="img")
    try:
        manifest = generate_benchmark(args.out, config, overwrite=args.overwrite, progress=update)
    finally:
        close()
    sizes = ", ".join(f"{split} {n} classes" for split, n in manifest["splits"].items())
    print(f"wrote {manifest['images']} images to {args.out} ({sizes}) in {manifest['seconds']} s")
    return 0


def check_(args) -> int:
    from ..data.check import check_dataset

    report = check_dataset(args.root, verify="header" if args.quick else "full")
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1


def import_(args) -> int:
    from ..data.importing import import_dataset

    summary = import_dataset(args.name, args.sources, args.root)
    sizes = ", ".join(f"{split} {n} classes" for split, n in summary["splits"].items())
    print(
        f"{args.name} ({summary['layout']}): {summary['images']} images into {args.root} "
        f"({sizes}); next: `bgbias masks {args.root}/images {args.root}/masks`, then "
        f"`bgbias data check {args.root}`"
    )
    return 0


def split_(args) -> int:
    from ..data.layout import write_class_split

    splits = write_class_split(
        args.root, {"train": args.train, "val": args.val, "test": args.test}, seed=args.seed
    )
    print(", ".join(f"{name}: {len(members)} classes" for name, members in splits.items()))
    return 0
