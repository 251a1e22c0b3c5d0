"""What a launch asks for (:class:`LaunchOptions`, with :class:`SlurmOptions` for the SLURM
launcher): plain settings, apart from the launchers, so that the CLI and every launcher build
and read them without importing one another."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SlurmOptions:
    """What the SLURM launcher asks for, per job (each job runs one task: a cell, a shard)."""

    partition: str | None = None
    gpus: int | None = None  # per job; default: the batch's own (reproduce: trainer.devices)
    time: str = "24:00:00"  # per job (a timed-out job is requeued and resumes), or minutes
    cpus: int = 8
    mem_gb: float | None = None
    options: dict[str, str] = field(default_factory=dict)  # extra sbatch options
    setup: tuple[str, ...] = ()  # shell lines before the job (module load ..., source ...)
    array: bool = True  # one job array (else one job per task)
    requeues: int = 3  # how often a timed-out job is requeued
    cluster: str = "slurm"  # submitit's cluster; "local" runs the jobs here (tests)


@dataclass(frozen=True)
class LaunchOptions:
    jobs: int = 1  # local: tasks at once
    wait: bool = True  # slurm: block until the jobs end
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
