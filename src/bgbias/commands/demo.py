"""`bgbias demo`: the paper's finding end to end on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

from ..demo import DemoConfig
from ._common import RegistryChoice, add_command, int_at_least, registry_names


def register(subparsers) -> None:
    defaults = DemoConfig()
    parser = add_command(
        subparsers,
        "demo",
        help="the paper's finding end to end on a laptop CPU (a few minutes)",
        description="Generate the benchmark, train a base and a BGAugment model, evaluate both "
        "on clean and replaced backgrounds, score their attention, write tables and figures.",
    )
    parser.add_argument("--out", default=str(defaults.out), help="output folder")
    parser.add_argument(
        "--backgrounds",
        help="folder with val/ and test/ background photos or a named set (paper, see "
        "`bgbias backgrounds list`; default: procedural banks)",
    )
    parser.add_argument(
        "--epochs", type=int_at_least(1), default=defaults.epochs, help="epochs of 100 steps"
    )
    parser.add_argument(
        "--loss",
        default=defaults.loss,
        action=RegistryChoice,
        names=registry_names("bgbias.losses.LOSSES"),
        listed_by="bgbias list losses",
        help="DML loss of both models",
    )
    parser.add_argument(
        "--repeats",
        type=int_at_least(1),
        default=defaults.repeats,
        help="replaced-background draws of the test set",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of every draw")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="extra training overrides"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo

    config = DemoConfig(
        out=Path(args.out),
        loss=args.loss,
        backgrounds=args.backgrounds,
        epochs=args.epochs,
        repeats=args.repeats,
        seed=args.seed,
        overrides=tuple(args.overrides),
    )
    results = run_demo(config)
    print()
    print((config.out / "table.md").read_text(), end="")
    print()
    print("\n".join(results["conclusion"]))
    print(
        f"\nresults in {config.out}/ (results.json, table.md, map_at_r.png, attribution.png, "
        f"retrieval.png); "
        f"{results['wall_seconds']:.0f} s"
    )
    return 0
