"""`bgbias attention`: SmoothGrad attention scores of every test image, per model."""

from __future__ import annotations

from pathlib import Path

from ._common import adapter_options, add_command, add_device, add_model_options, int_at_least


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "attention",
        help="SmoothGrad maps and attention scores of test images, per model",
        description="Score every test image of each model (one resumable CSV per model, keyed "
        "by the model), write a summary table, and with --figures K a figure of K images and "
        "each model's map.",
    )
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help="bgbias checkpoints or backbone names"
    )
    add_model_options(parser)
    parser.add_argument("--dataset", help="dataset name (default: each checkpoint's)")
    parser.add_argument("--root", help="dataset folder (default: each checkpoint's)")
    parser.add_argument("--split", default="test", help="split to score")
    parser.add_argument("--limit", type=int_at_least(1), help="a seeded random N test images")
    parser.add_argument(
        "--figures", type=int_at_least(0), default=0, metavar="K", help="images in the figure"
    )
    parser.add_argument(
        "--images-per-pass",
        type=int_at_least(1),
        help="images per forward/backward (default: 1 on CPU, 16 on GPU)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and the subset")
    add_device(parser)
    parser.add_argument("--out", default="attention", help="output folder")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..attention import score_models

    score_models(
        args.models,
        args.out,
        dataset=args.dataset,
        root=args.root,
        split=args.split,
        limit=args.limit,
        seed=args.seed,
        images_per_pass=args.images_per_pass,
        device=args.device,
        figures=args.figures,
        options=adapter_options(args),
    )
    print((Path(args.out) / "summary.md").read_text(), end="")
    print(f"wrote {args.out}/ (summary.json, summary.md, summary.tex, one CSV per model)")
    return 0
