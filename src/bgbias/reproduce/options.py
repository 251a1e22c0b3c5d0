"""What a launch asks for (:class:`LaunchOptions`, with :class:`SlurmOptions` for the SLURM
launcher): plain settings, apart from the launchers, so that the CLI and every launcher build
and read them without importing one another."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SlurmOptions:
    """What the SLURM launcher asks for, per cell (each job runs one cell's stages)."""

    partition: str | None = None
    gpus: int | None = None  # per job; default: trainer.devices of the overrides, else 1
    time: str = "24:00:00"  # per job (a timed-out job is requeued and resumes), or minutes
    cpus: int = 8
    mem_gb: float | None = None
    options: dict[str, str] = field(default_factory=dict)  # extra sbatch options
    setup: tuple[str, ...] = ()  # shell lines before the job (module load ..., source ...)
    array: bool = True  # one job array (else one job per cell)
    requeues: int = 3  # how often a timed-out job is requeued
    cluster: str = "slurm"  # submitit's cluster; "local" runs the jobs here (tests)


@dataclass(frozen=True)
class LaunchOptions:
    jobs: int = 1  # local: cells at once
    wait: bool = True  # slurm: block until the jobs end
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
