"""`bgbias masks` and `bgbias check-masks`: foreground masks for image folders, and their
quality against hand-labelled masks."""

from __future__ import annotations

import json

from ._common import MASK_MODELS, RegistryChoice, add_command, add_device, int_at_least
from ._launch import add_launch_options, launch_options


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "masks",
        help="foreground masks for every image under IMAGES (resumable, shardable)",
        description="One PNG per image under MASKS (same relative path, .png), same size as "
        "the image, 0-255 soft mask. Finished masks are skipped, so a killed job resumes.",
    )
    parser.add_argument("images", help="image folder")
    parser.add_argument("masks", help="mask folder to write")
    parser.add_argument(
        "--model",
        default="u2net",
        action=RegistryChoice,
        names=MASK_MODELS,
        listed_by="bgbias list mask-models",
        help="mask model",
    )
    parser.add_argument(
        "--shard", help="K/N: only every N-th image from the K-th (default: all images)"
    )
    parser.add_argument(
        "--shards",
        type=int_at_least(1),
        metavar="N",
        help="split the job into N shards, each a job of --launcher (local: one after another; "
        "slurm: one job array); a rerun launches only the shards not finished",
    )
    add_device(parser)
    parser.add_argument(
        "--batch-size",
        type=int_at_least(1),
        help="images per model call (default 1 on CPU, 16 on GPU)",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        action=RegistryChoice,
        names=_backends,
        listed_by="bgbias list mask-engines",
        help="mask engine; auto: onnxruntime on a CPU (measured faster), torch on a GPU",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "fp16", "bf16"],
        help="torch engine's precision; auto: fp16 on a GPU, fp32 on a CPU",
    )
    parser.add_argument(
        "--threads", type=int_at_least(1), help="threads of one model call (default: the engine's)"
    )
    parser.add_argument(
        "--workers",
        type=int_at_least(1),
        help="decode/encode threads (default: one per core, at most 8)",
    )
    parser.add_argument(
        "--flip-check",
        action="store_true",
        help="also mask each mirrored photo and flag masks that disagree with it (twice the "
        "model time)",
    )
    add_launch_options(parser, task="shard")
    parser.set_defaults(func=run)

    check = add_command(
        subparsers, "check-masks", help="IoU and overlap of masks against hand-labelled ones"
    )
    check.add_argument("pred", help="folder of predicted masks")
    check.add_argument("gt", help="folder of hand-labelled masks")
    check.add_argument(
        "--pred-suffix",
        default="",
        help="strip from predicted names, e.g. _image pairs 12_image.png with 12_mask.png",
    )
    check.add_argument("--gt-suffix", default="", help="strip from hand-mask names (_mask)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument("--out", help="also write the result JSON here")
    check.set_defaults(func=check_masks)


def _backends() -> list[str]:
    from ..masks.predictors import U2NET_ENGINES

    return ["auto", *U2NET_ENGINES.names()]


def _settings(args) -> dict:
    return {
        "model": args.model,
        "device": args.device,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "threads": args.threads,
        "precision": args.precision,
        "flip_check": args.flip_check,
    }


def run(args) -> int:
    from ..errors import ConfigError
    from ..masks.generate import generate_masks, parse_shard

    if args.shards is not None or args.launcher != "local":
        if args.shard is not None:
            raise ConfigError("--shard K/N runs one shard by hand; --shards N launches them all")
        return _run_shards(args)
    report = generate_masks(
        args.images, args.masks, shard=parse_shard(args.shard or "0/1"), **_settings(args)
    )
    print(
        f"{report.written} mask(s) written, {report.already_done} already there, "
        f"{len(report.failed)} failed, {report.images_per_second:.2f} images/s"
    )
    if report.suspects:
        print(
            f"{len(report.suspects)} suspect mask(s) (empty, full, on the border, in pieces"
            f"{', unstable under a flip' if args.flip_check else ''}): look at "
            f"{report.suspects_sheet}; all are listed in {report.suspects_file}"
        )
    if report.stale_temporaries_removed:
        print(f"removed {report.stale_temporaries_removed} temporary file(s) of a killed run")
    if not report.ok:
        for failure in report.failed[:5]:
            print(f"  failed: {failure['error']}")
        print(f"{len(report.failed)} image(s) failed; all are listed in {report.failures_file}")
    return 0 if report.ok else 1


def _run_shards(args) -> int:
    from ..masks.shards import launch_mask_shards

    run = launch_mask_shards(
        args.images,
        args.masks,
        args.shards or 1,
        args.launcher,
        launch_options(args),
        **_settings(args),
    )
    if run.finished_before:
        print(f"{len(run.finished_before)} of {run.shards} shard(s) already finished")
    if not run.launched:
        print(f"all {run.shards} shard(s) finished: {args.masks}")
        return 0
    shards = ", ".join(str(k) for k in run.launched)
    if run.jobs:
        print(
            f"submitted shard(s) {shards} of {run.shards} as SLURM job(s) "
            f"{', '.join(run.jobs)}; logs in {run.result.folder}; run this command again when "
            "they end: it submits only shards not finished"
        )
        return 0
    reports = run.result.results
    failed = sum(report["failed"] for report in reports)
    print(
        f"ran shard(s) {shards} of {run.shards}: {sum(r['written'] for r in reports)} mask(s) "
        f"written, {sum(r['already_done'] for r in reports)} already there, {failed} failed"
    )
    for report in reports:
        if report["failed"]:
            print(f"  {report['failed']} failed: listed in {report['failures_file']}")
    return 1 if failed else 0


def check_masks(args) -> int:
    from ..io import write_json
    from ..masks.quality import format_quality, mask_quality

    result = mask_quality(args.pred, args.gt, args.pred_suffix, args.gt_suffix)
    print(json.dumps(result, indent=2) if args.json else format_quality(result), end="")
    if args.out:
        write_json(args.out, result)
    return 0
