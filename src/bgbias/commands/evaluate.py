"""`bgbias evaluate`: clean vs replaced-background retrieval metrics of a model."""

from __future__ import annotations

from ..tabular import mean_std
from ._common import (
    MASK_MODELS,
    RegistryChoice,
    adapter_options,
    add_command,
    add_device,
    add_fill,
    add_model_options,
    int_at_least,
)


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "evaluate",
        help="clean vs replaced-background retrieval metrics of a model",
        description="Embed the test split once clean and REPEATS times with backgrounds "
        "replaced from the test bank; write every value to JSON (beside a checkpoint).",
    )
    parser.add_argument(
        "model", help="a bgbias checkpoint or any model form (`bgbias list model-forms`)"
    )
    add_model_options(parser)
    parser.add_argument("--dataset", help="dataset name (default: the checkpoint's)")
    parser.add_argument("--root", help="dataset folder (default: the checkpoint's)")
    parser.add_argument("--split", default="test", help="split to evaluate")
    parser.add_argument(
        "--repeats", type=int_at_least(0), default=5, help="replaced-background draws"
    )
    parser.add_argument(
        "--backgrounds",
        help="folder with test/ photos, a named set (paper) or 'procedural' (default: the "
        "checkpoint's source)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the background draws")
    parser.add_argument("--batch-size", type=int_at_least(1), default=64, help="images per batch")
    parser.add_argument(
        "--workers", type=int_at_least(0), default=0, help="data loader processes (0: inline)"
    )
    parser.add_argument(
        "--query-masking",
        nargs="?",
        const="u2netp",
        action=RegistryChoice,
        names=MASK_MODELS,
        listed_by="bgbias list mask-models",
        metavar="MASK_MODEL",
        help="test-time background removal: every image's background (clean and replaced) is "
        "removed by MASK_MODEL before embedding (u2netp when none is named); the result gives "
        "the measured inference cost per image",
    )
    parser.add_argument(
        "--fusion",
        metavar="RULE",
        help="fused dual-vector search: every image is embedded as it is and with its "
        "background removed by --mask-model, and ranked by RULE over both: full, foreground, "
        "rrf or weighted:W (W: the full vector's share)",
    )
    parser.add_argument(
        "--mask-model",
        default="u2netp",
        action=RegistryChoice,
        names=MASK_MODELS,
        listed_by="bgbias list mask-models",
        help="mask model of --fusion's foreground vectors",
    )
    add_fill(parser)
    add_device(parser)
    parser.add_argument(
        "--out",
        help="result JSON (default: <checkpoint>.<split>.eval.json, "
        "<checkpoint>.<split>.query-masking-<mask model>.eval.json with --query-masking, "
        "<checkpoint>.<split>.fusion-<rule>-<mask model>.eval.json with --fusion)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import evaluate_model

    result, path = evaluate_model(
        args.model,
        dataset=args.dataset,
        root=args.root,
        split=args.split,
        repeats=args.repeats,
        backgrounds=args.backgrounds,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.workers,
        out=args.out,
        options=adapter_options(args),
        query_masking=args.query_masking,
        fill=args.fill,
        fusion=args.fusion,
        mask_model=args.mask_model,
    )
    clean = result["clean"]
    print(
        f"clean:     MAP@R {clean['map_at_r']:.4f}  P@1 {clean['precision_at_1']:.4f}  "
        f"R-Precision {clean['r_precision']:.4f}"
    )
    if result["corrupted"]:
        c = result["corrupted"]
        print(
            f"corrupted: MAP@R {mean_std(c['map_at_r']['mean'], c['map_at_r']['std'], 4)}  "
            f"P@1 {c['precision_at_1']['mean']:.4f}  R-Precision {c['r_precision']['mean']:.4f}"
            f"  ({result['repeats']} repeats)"
        )
    cost = result["inference"]["ms_per_image"]
    masking = f" (mask model {cost['mask']:.1f} + embedding {cost['embed']:.1f})"
    print(
        f"inference: {cost['total']:.1f} ms per image on {result['inference']['device']}"
        + (masking if args.query_masking or args.fusion else "")
    )
    print(f"wrote {path}")
    return 0
