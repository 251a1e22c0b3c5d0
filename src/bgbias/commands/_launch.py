"""The launch options every launching command shares (`bgbias reproduce`, `bgbias masks`,
`bgbias index`): where to run (--launcher), how many at once (--jobs), and the SLURM job's
resources (--slurm-*), defined once here and read back by :func:`launch_options`."""

from __future__ import annotations

import argparse

from ._common import RegistryChoice, int_at_least, registry_names


def add_launch_options(parser: argparse.ArgumentParser, task: str = "task") -> None:
    """--launcher, --jobs, --wait and the --slurm-* group; ``task`` names what one job runs
    (a cell, a shard) in the help."""
    parser.add_argument(
        "--launcher",
        default="local",
        action=RegistryChoice,
        names=registry_names("bgbias.launch.launchers.LAUNCHERS"),
        listed_by="bgbias list launchers",
        help="where to run",
    )
    parser.add_argument(
        "--jobs", type=int_at_least(1), default=1, help=f"local: {task}s at once (one GPU each)"
    )
    parser.add_argument("--wait", action="store_true", help="slurm: wait until the jobs end")
    slurm = parser.add_argument_group(f"SLURM (--launcher slurm, one job per {task})")
    slurm.add_argument("--slurm-partition", help="partition")
    slurm.add_argument(
        "--slurm-gpus",
        type=int_at_least(0),
        help="GPUs per job; default: trainer.devices (reproduce), else 1",
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
        "--slurm-no-array", action="store_true", help=f"one job per {task} instead of an array"
    )
    slurm.add_argument(
        "--slurm-requeues", type=int_at_least(0), default=3, help="requeues of a timed-out job"
    )


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().lstrip("-"), value


def launch_options(args: argparse.Namespace):
    """The :class:`bgbias.launch.LaunchOptions` of the options :func:`add_launch_options` added."""
    from ..launch import LaunchOptions, SlurmOptions

    return LaunchOptions(
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
