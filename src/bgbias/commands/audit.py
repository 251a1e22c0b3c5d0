"""`bgbias audit`: how much any embedding model relies on backgrounds, on any image folder."""

from __future__ import annotations

from ._common import (
    MASK_MODELS,
    RegistryChoice,
    add_command,
    add_device,
    add_model_options,
    int_at_least,
)


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "audit",
        help="how much models rely on backgrounds, on any image folder (report.html)",
        description="Embed every image under conditions after the ImageNet backgrounds "
        "challenge (original, only_fg, mixed_rand, mixed_same, only_bg, and a blend sweep) and "
        "write OUT/audit.json, OUT/report.md and a self-contained OUT/report.html with a "
        "verdict per model. IMAGES: a bgbias dataset folder, a ROOT/<class>/<image> tree, or a "
        "flat folder of images (no labels: instance metrics only).",
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="models in any form (`bgbias list model-forms`): checkpoints, backbone names, "
        "onnx:FILE, torchscript:FILE, timm:NAME, hf:ID, open_clip:ARCH, python:MODULE:FACTORY",
    )
    parser.add_argument("images", metavar="IMAGES", help="image folder")
    add_model_options(parser)
    parser.add_argument("--out", default="audit", help="output folder")
    parser.add_argument("--split", help="a split of a bgbias dataset folder (default: all images)")
    parser.add_argument(
        "--masks", help="mask folder mirroring IMAGES (default: a bgbias folder's masks/)"
    )
    parser.add_argument(
        "--image-suffix",
        default="",
        help="audit only images whose name ends with it (before the extension), e.g. _image",
    )
    parser.add_argument(
        "--mask-suffix",
        default="",
        help="mask name = image name less --image-suffix, plus this, .png (e.g. _mask)",
    )
    parser.add_argument(
        "--mask-model",
        action=RegistryChoice,
        names=MASK_MODELS,
        listed_by="bgbias list mask-models",
        help="make missing masks with this model (cached: a rerun reuses them)",
    )
    parser.add_argument(
        "--backgrounds",
        help="folder of background photos for mixed_rand (its test/ sub-folder when it has "
        "one) or a named set (paper: its test photos, see `bgbias backgrounds list`; default: "
        "procedural textures)",
    )
    parser.add_argument(
        "--repeats", type=int_at_least(1), default=5, help="draws of mixed_rand and mixed_same"
    )
    parser.add_argument(
        "--blend-steps", type=int_at_least(2), default=5, help="alphas of the blend sweep"
    )
    parser.add_argument(
        "--attention",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="attention score on N seeded images per differentiable model (slow on a CPU)",
    )
    parser.add_argument(
        "--worst", type=int_at_least(1), default=8, help="worst images listed per condition"
    )
    parser.add_argument(
        "--exclude-suspect-masks",
        action="store_true",
        help="leave out images whose mask looks wrong (empty, full, on the border...); "
        "default: audit them and mark them in the report",
    )
    parser.add_argument(
        "--grid-queries", type=int_at_least(1), default=4, help="queries per retrieval grid"
    )
    parser.add_argument("--top-k", type=int_at_least(1), default=5, help="results per query")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw")
    parser.add_argument("--batch-size", type=int_at_least(1), default=64, help="images per batch")
    add_device(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..auditing.api import audit

    result = audit(
        args.models,
        args.images,
        split=args.split,
        masks=args.masks,
        image_suffix=args.image_suffix,
        mask_suffix=args.mask_suffix,
        mask_model=args.mask_model,
        backgrounds=args.backgrounds,
        input_size=args.input_size,
        mean=args.mean,
        std=args.std,
        weights=args.weights,
        pretrained=not args.untrained,
        repeats=args.repeats,
        blend_steps=args.blend_steps,
        attention=args.attention,
        worst=args.worst,
        exclude_suspect_masks=args.exclude_suspect_masks,
        grid_queries=args.grid_queries,
        top_k=args.top_k,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        out=args.out,  # checked first, claimed once every input is; made masks go to OUT/masks
    )
    for name, found in result.verdicts.items():
        print(f"{name}: {found.sentence}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {args.out}/ (audit.json, report.md, report.html, figures/)")
    return 0
