"""The SLURM launcher, on submitit: each task of a batch (a reproduce cell, a masks or index
shard) is one job, in one job array by default, on a compute node. A job that reaches its time
limit is requeued by submitit (the task resumes where it stopped), up to ``requeues`` times.

Needs ``pip install 'bgbias[slurm]'`` and ``sbatch`` on the PATH (a login node); the submitit
folder (the batch's, e.g. ``OUT/.submitit``) and the outputs must be on a file system the nodes
share.
"""

from __future__ import annotations

import re
import shutil

from ..errors import ConfigError
from .launchers import LAUNCHERS, Batch, Launched, Launcher
from .options import LaunchOptions, SlurmOptions

try:
    from submitit.helpers import Checkpointable
except ImportError:  # `check` says how to install it before anything is submitted
    Checkpointable = object


def check(options: LaunchOptions) -> None:
    """Fail at once, in one line, when jobs cannot be submitted."""
    # the machine first: on a laptop, installing submitit would not help
    if options.slurm.cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError(
            "--launcher slurm: `sbatch` is not on the PATH (run bgbias on a SLURM login node, "
            "or use --launcher local)"
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


def make_executor(batch: Batch, options: SlurmOptions):
    """A submitit executor with the jobs' resources; ``batch.folder`` holds scripts and logs."""
    import submitit

    executor = submitit.AutoExecutor(
        folder=batch.folder / "%j", cluster=options.cluster, slurm_max_num_timeout=options.requeues
    )
    executor.update_parameters(
        name=batch.name,
        timeout_min=time_minutes(options.time),
        nodes=1,
        tasks_per_node=1,
        cpus_per_task=options.cpus,
        gpus_per_node=batch.gpus if options.gpus is None else options.gpus,
        mem_gb=options.mem_gb,
        slurm_partition=options.partition,
        slurm_additional_parameters=dict(options.options) or None,
        slurm_setup=list(options.setup) or None,
        slurm_array_parallelism=len(batch.arguments),
    )
    return executor


class TaskJob(Checkpointable):
    """The job: one task of a batch. A submitit Checkpointable, so a timed-out job is requeued
    with the same task (which resumes where it stopped)."""

    def __init__(self, function) -> None:
        self.function = function

    def __call__(self, argument):
        return self.function(argument, None)


def launch(batch: Batch, options: LaunchOptions) -> Launched:
    """Submit one job per task (an array unless ``options.slurm.array`` is false); the
    result's ``wait()`` blocks until all jobs end."""
    executor = make_executor(batch, options.slurm)
    job = TaskJob(batch.function)
    if options.slurm.array and len(batch.arguments) > 1:
        jobs = executor.map_array(job, batch.arguments)
    else:
        jobs = [executor.submit(job, argument) for argument in batch.arguments]

    def wait() -> None:
        for submitted in jobs:
            submitted.wait()  # a task records its own failure (state, log, missing marker)

    return Launched(jobs=[str(j.job_id) for j in jobs], folder=str(batch.folder), wait=wait)


def describe(batch: Batch, options: LaunchOptions) -> str:
    """The sbatch script the launch would submit (submitit writes the same text)."""
    check(options)
    executor = make_executor(batch, options.slurm)
    inner = getattr(executor, "_executor", executor)
    if not hasattr(inner, "_make_submission_file_text"):
        return f"{options.slurm.cluster}: {len(batch.arguments)} job(s)"
    parameters = dict(inner.parameters)
    if options.slurm.array and len(batch.arguments) > 1:
        inner.parameters["map_count"] = len(batch.arguments)
    try:
        return inner._make_submission_file_text(inner._submitit_command_str, "plan")
    finally:
        inner.parameters.clear()
        inner.parameters.update(parameters)


LAUNCHERS.register(
    "slurm",
    Launcher(
        "slurm",
        "a SLURM job array (or one job per task) through submitit",
        check,
        launch,
        describe,
    ),
)
