"""Sharded jobs: split one long job (masks of a folder, embeddings of a catalogue) into N
shards, run or submit those not finished, and say which. A shard must be resumable and must
mark itself finished atomically (``finished(k)`` reads that mark), so a rerun launches only
the shards a failure, a kill or a time limit left unfinished."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .launchers import Batch, Launched, launch
from .options import LaunchOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardedRun:
    """What :func:`launch_shards` found and did."""

    shards: int
    finished_before: list[int]  # shards already finished: not launched again
    launched: list[int]  # shards run (local) or submitted (slurm) now
    result: Launched | None = None

    @property
    def jobs(self) -> list[str]:
        return (self.result.jobs if self.result else None) or []


def shard_settings(settings: dict[str, Any], env: dict[str, str] | None) -> dict[str, Any]:
    """``settings`` for one shard's job: on the GPU a local launcher gave it (``env``'s
    CUDA_VISIBLE_DEVICES) unless the settings name a device of their own."""
    gpu = (env or {}).get("CUDA_VISIBLE_DEVICES")
    if gpu is not None and settings.get("device", "auto") in ("auto", "cuda"):
        return settings | {"device": f"cuda:{gpu}"}
    return settings


def launch_shards(
    name: str,
    function: Callable[[int, dict[str, str] | None], Any],
    shards: int,
    finished: Callable[[int], bool],
    folder: Path,
    launcher: str = "local",
    options: LaunchOptions | None = None,
) -> ShardedRun:
    """Launch ``function(k, env)`` for every shard ``k`` of ``range(shards)`` that is not
    ``finished(k)``: locally, or as one SLURM job array (``folder``: submitit's scripts and
    logs). ``function`` must be picklable (a module-level function or a partial of one)."""
    if shards < 1:
        raise ConfigError(f"--shards must be >= 1, got {shards}")
    done = [k for k in range(shards) if finished(k)]
    todo = [k for k in range(shards) if k not in done]
    if not todo:
        return ShardedRun(shards, done, [])
    log.info("%s: %d of %d shard(s) to run, %d finished", name, len(todo), shards, len(done))
    batch = Batch(name=name, function=function, arguments=todo, folder=folder)
    return ShardedRun(shards, done, todo, launch(batch, launcher, options))
