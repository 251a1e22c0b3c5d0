"""The SLURM launcher, on submitit: each cell is one job (in one job array by default) running
:func:`bgbias.reproduce.cell.run_cell` on a compute node. A job that reaches its time limit is
requeued by submitit (the cell resumes from its last checkpoint), up to ``requeues`` times.

Needs ``pip install 'bgbias[slurm]'`` and ``sbatch`` on the PATH (a login node); the submitit
folder (``OUT/.submitit``) and OUT itself must be on a file system the nodes share.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from ..config import compose
from ..errors import ConfigError
from .cell import run_cell
from .launchers import LAUNCHERS, Launcher
from .options import LaunchOptions, SlurmOptions
from .plan import Cell
from .state import update_state

try:
    from submitit.helpers import Checkpointable
except ImportError:  # `check` says how to install it before anything is submitted
    Checkpointable = object

JOB_NAME = "bgbias-reproduce"


def check(options: LaunchOptions) -> None:
    """Fail at once, in one line, when jobs cannot be submitted."""
    # the machine first: on a laptop, installing submitit would not help
    if options.slurm.cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError(
            "--launcher slurm: `sbatch` is not on the PATH (run bgbias reproduce on a SLURM "
            "login node, or use --launcher local)"
        )
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("--launcher slurm needs submitit: pip install 'bgbias[slurm]'") from None
    time_minutes(options.slurm.time)


def time_minutes(text: str) -> int:
    """SLURM time limits: ``MIN``, ``HH:MM:SS``, ``MM:SS`` or ``D-HH[:MM[:SS]]`` -> minutes."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(text).strip())
    if not match:
        raise ConfigError(f"--slurm-time {text!r}: use minutes, HH:MM:SS or D-HH:MM:SS")
    days, first, second, third = (int(g) if g else None for g in match.groups())
    if days is None and second is None:
        return first  # plain minutes
    if days is not None:
        hours, minutes, seconds = first, second or 0, third or 0
    elif third is None:
        hours, minutes, seconds = 0, first, second  # MM:SS
    else:
        hours, minutes, seconds = first, second, third
    return max(1, (days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0))


def gpus_per_job(cells: list[Cell], options: SlurmOptions) -> int:
    """``options.gpus``, else the ``trainer.devices`` the cells train with (1 when 'auto')."""
    if options.gpus is not None:
        return options.gpus
    devices = compose(cells[0].preset, [*cells[0].overrides]).trainer.devices
    if isinstance(devices, int):
        return max(devices, 1)  # -1 ("all") asks for one: pass --slurm-gpus N for more
    if isinstance(devices, str):
        return int(devices) if devices.isdigit() else max(1, len(devices.strip(",").split(",")))
    return max(1, len(devices))  # a list of device ids


def make_executor(folder: Path, cells: list[Cell], options: SlurmOptions):
    """A submitit executor with the jobs' resources; ``folder`` holds its scripts and logs."""
    import submitit

    executor = submitit.AutoExecutor(
        folder=folder / "%j", cluster=options.cluster, slurm_max_num_timeout=options.requeues
    )
    executor.update_parameters(
        name=JOB_NAME,
        timeout_min=time_minutes(options.time),
        nodes=1,
        tasks_per_node=1,
        cpus_per_task=options.cpus,
        gpus_per_node=gpus_per_job(cells, options),
        mem_gb=options.mem_gb,
        slurm_partition=options.partition,
        slurm_additional_parameters=dict(options.options) or None,
        slurm_setup=list(options.setup) or None,
        slurm_array_parallelism=len(cells),
    )
    return executor


class CellJob(Checkpointable):
    """The job: run one cell. A submitit Checkpointable, so a timed-out job is requeued with
    the same cell (which resumes from its last checkpoint)."""

    def __call__(self, folder: str) -> str:
        return run_cell(folder)


def launch(cells: list[Cell], options: LaunchOptions) -> dict[str, Any]:
    """Submit one job per cell (an array unless ``options.slurm.array`` is false); cells are
    marked ``queued`` with their job id. With ``options.wait``, block until all jobs end."""
    out = cells[0].root
    executor = make_executor(out / ".submitit", cells, options.slurm)
    job = CellJob()
    folders = [str(cell.folder) for cell in cells]
    if options.slurm.array and len(cells) > 1:
        jobs = executor.map_array(job, folders)
    else:
        jobs = [executor.submit(job, folder) for folder in folders]
    for cell, submitted in zip(cells, jobs, strict=True):
        update_state(cell, state="queued", job=str(submitted.job_id), error=None)
    if options.wait:
        for submitted in jobs:
            submitted.wait()  # a failure is in the cell's own state and log
    return {
        "submitted": len(jobs),
        "jobs": [str(j.job_id) for j in jobs],
        "folder": str(out / ".submitit"),
    }


def describe(cells: list[Cell], options: LaunchOptions) -> str:
    """The sbatch script the launch would submit (submitit writes the same text)."""
    check(options)
    out = cells[0].root
    executor = make_executor(out / ".submitit", cells, options.slurm)
    inner = getattr(executor, "_executor", executor)
    if not hasattr(inner, "_make_submission_file_text"):
        return f"{options.slurm.cluster}: {len(cells)} job(s)"
    parameters = dict(inner.parameters)
    if options.slurm.array and len(cells) > 1:
        inner.parameters["map_count"] = len(cells)
    try:
        return inner._make_submission_file_text(inner._submitit_command_str, "plan")
    finally:
        inner.parameters.clear()
        inner.parameters.update(parameters)


LAUNCHERS.register(
    "slurm",
    Launcher(
        "slurm", "a SLURM job array (or one job per cell) through submitit", check, launch, describe
    ),
)
