"""`bgbias reproduce`: every matching preset through training, evaluation and attention
scores, resumably, here or on a SLURM cluster; `--status DIR` shows where each cell stands."""

from __future__ import annotations

import argparse

from ._common import RegistryChoice, add_command, int_at_least, registry_names


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "reproduce",
        help="train, evaluate and score every matching preset (resumable; local or SLURM)",
        description="Run the presets matching PATTERN (e.g. 'cub200/*/*', '*/*/base'; `bgbias "
        "list presets`) through training, evaluation (REPEATS draws of the test backgrounds) "
        "and attention scores, one folder per preset under OUT. A finished cell is skipped, a "
        "killed one resumes from its last checkpoint, a failed one does not stop the others "
        "(exit code 1, its log named in the table). key=value overrides go to every training "
        "(e.g. trainer.devices=4 trainer.strategy=ddp). Then: bgbias report OUT --compare paper",
    )
    parser.add_argument("pattern", nargs="?", help="preset pattern, shell-style")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training overrides")
    parser.add_argument("--out", help="folder of the cells (required unless --status)")
    parser.add_argument("--status", metavar="DIR", help="only print the status table of DIR")
    parser.add_argument(
        "--stages", default="train,evaluate,attention", help="comma-separated stages to run"
    )
    parser.add_argument(
        "--launcher",
        default="local",
        action=RegistryChoice,
        names=registry_names("bgbias.reproduce.launchers.LAUNCHERS"),
        listed_by="bgbias list launchers",
        help="where to run",
    )
    parser.add_argument(
        "--jobs", type=int_at_least(1), default=1, help="local: cells at once (one GPU each)"
    )
    parser.add_argument("--repeats", type=int_at_least(0), default=5, help="test background draws")
    parser.add_argument(
        "--attention-limit",
        type=int_at_least(1),
        metavar="N",
        help="attention scores of a seeded random N test images; all when not given",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--wait", action="store_true", help="slurm: wait until the jobs end")
    parser.add_argument("--resubmit", action="store_true", help="slurm: submit queued cells again")
    slurm = parser.add_argument_group("SLURM (--launcher slurm, one job per cell)")
    slurm.add_argument("--slurm-partition", help="partition")
    slurm.add_argument(
        "--slurm-gpus", type=int_at_least(0), help="GPUs per job; trainer.devices when not given"
    )
    slurm.add_argument(
        "--slurm-time", default="24:00:00", help="time limit per job (requeued and resumed)"
    )
    slurm.add_argument("--slurm-cpus", type=int_at_least(1), default=8, help="CPUs per job")
    slurm.add_argument("--slurm-mem", type=float, metavar="GB", help="memory per job")
    slurm.add_argument(
        "--slurm-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_key_value,
        help="extra sbatch option, e.g. account=abc or qos=high (repeatable)",
    )
    slurm.add_argument(
        "--slurm-setup",
        action="append",
        default=[],
        metavar="LINE",
        help="shell line run before each job, e.g. 'source venv/bin/activate' (repeatable)",
    )
    slurm.add_argument(
        "--slurm-no-array", action="store_true", help="one job per cell instead of an array"
    )
    slurm.add_argument(
        "--slurm-requeues", type=int_at_least(0), default=3, help="requeues of a timed-out job"
    )
    parser.set_defaults(func=run)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().lstrip("-"), value


def run(args) -> int:
    from ..errors import ConfigError
    from ..reproduce import LaunchOptions, SlurmOptions, reproduce, status
    from ..reproduce.state import status_markdown

    if args.status:
        rows = status(args.status)
        print(status_markdown(rows), end="")
        return 1 if any(row["state"] == "failed" for row in rows) else 0
    if not args.pattern or not args.out:
        raise ConfigError("name a preset PATTERN and --out DIR (or --status DIR)")
    options = LaunchOptions(
        jobs=args.jobs,
        wait=args.wait,
        slurm=SlurmOptions(
            partition=args.slurm_partition,
            gpus=args.slurm_gpus,
            time=args.slurm_time,
            cpus=args.slurm_cpus,
            mem_gb=args.slurm_mem,
            options=dict(args.slurm_option),
            setup=tuple(args.slurm_setup),
            array=not args.slurm_no_array,
            requeues=args.slurm_requeues,
        ),
    )
    result = reproduce(
        args.pattern,
        args.out,
        args.overrides,
        stages=args.stages,
        launcher=args.launcher,
        options=options,
        repeats=args.repeats,
        attention_limit=args.attention_limit,
        dry_run=args.dry_run,
        resubmit=args.resubmit,
    )
    if args.dry_run:
        print(result.plan)
        return 0
    for preset, why in result.skipped.items():
        print(f"skipped {preset}: {why}")
    print(result.table(), end="")
    print(f"wrote {args.out}/status.md and status.json")
    print(f"next: bgbias report {args.out} --compare paper")
    return 1 if result.failed else 0
