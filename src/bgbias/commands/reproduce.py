"""`bgbias reproduce`: every matching preset through training, evaluation and attention
scores, resumably, here or on a SLURM cluster; `--status DIR` shows where each cell stands."""

from __future__ import annotations

from ._common import add_command, int_at_least
from ._launch import add_launch_options, launch_options


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
    add_launch_options(parser, task="cell")
    parser.add_argument("--repeats", type=int_at_least(0), default=5, help="test background draws")
    parser.add_argument(
        "--attention-limit",
        type=int_at_least(1),
        metavar="N",
        help="attention scores of a seeded random N test images; all when not given",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--resubmit", action="store_true", help="slurm: submit queued cells again")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..reproduce import reproduce, status
    from ..reproduce.state import status_markdown

    if args.status:
        rows = status(args.status)
        print(status_markdown(rows), end="")
        return 1 if any(row["state"] == "failed" for row in rows) else 0
    if not args.pattern or not args.out:
        raise ConfigError("name a preset PATTERN and --out DIR (or --status DIR)")
    result = reproduce(
        args.pattern,
        args.out,
        args.overrides,
        stages=args.stages,
        launcher=args.launcher,
        options=launch_options(args),
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
