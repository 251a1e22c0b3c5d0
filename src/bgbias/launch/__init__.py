"""Running a batch of tasks here or on a SLURM cluster: ``bgbias reproduce`` (its cells),
``bgbias masks`` and ``bgbias index`` (their shards) all launch through :func:`launch`."""

from .launchers import LAUNCHERS, Batch, Launched, Launcher, launch
from .options import LaunchOptions, SlurmOptions
from .shards import ShardedRun, launch_shards, shard_settings

__all__ = [
    "LAUNCHERS",
    "Batch",
    "LaunchOptions",
    "Launched",
    "Launcher",
    "ShardedRun",
    "SlurmOptions",
    "launch",
    "launch_shards",
    "shard_settings",
]
