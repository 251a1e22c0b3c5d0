"""Launchers run a plan's cells: ``local`` (one after another, or N at once, on this machine)
and ``slurm`` (submitit: a job array or one job per cell). A launcher is one registry entry:
a ``check`` that fails at once when it cannot start, and a ``launch`` for the cells. The
``slurm`` launcher registers itself on the first lookup (a provider of :data:`LAUNCHERS`)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .cell import allow_runs, run_cell, terminate_children
from .options import LaunchOptions
from .plan import Cell

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launcher:
    name: str
    description: str
    check: Callable[[LaunchOptions], None]  # raises when the launcher cannot start
    launch: Callable[[list[Cell], LaunchOptions], dict[str, Any]]
    describe: Callable[[list[Cell], LaunchOptions], str] = lambda cells, options: ""


LAUNCHERS: Registry[Launcher] = Registry("launcher", providers=("bgbias.reproduce.slurm",))


def _check_local(options: LaunchOptions) -> None:
    if options.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {options.jobs}")


def _launch_local(cells: list[Cell], options: LaunchOptions) -> dict[str, Any]:
    """Run the cells here, ``options.jobs`` at once (each in its own stage processes). With
    several jobs and as many GPUs, each job gets its own GPU. SIGTERM or Ctrl-C stops the
    stage processes too; a stopped cell resumes on the next run."""
    allow_runs()
    slots = list(range(options.jobs))
    gpus = _gpu_count()
    slot_lock = threading.Lock()

    def run(cell: Cell) -> str:
        with slot_lock:
            slot = slots.pop(0)
        try:
            share = options.jobs > 1 and gpus >= options.jobs
            return run_cell(cell.folder, {"CUDA_VISIBLE_DEVICES": str(slot)} if share else None)
        finally:
            with slot_lock:
                slots.append(slot)

    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = ThreadPoolExecutor(max_workers=options.jobs)
    try:
        states = list(pool.map(run, cells))
    except KeyboardInterrupt:
        terminate_children()  # the running cells stop, as interrupted (they resume next time)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return {"ran": len(cells), "states": dict(zip((c.preset for c in cells), states, strict=True))}


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA: no GPUs to share out
        return 0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _describe_local(cells: list[Cell], options: LaunchOptions) -> str:
    return f"local: {len(cells)} cell(s), {options.jobs} at once"


LAUNCHERS.register(
    "local",
    Launcher(
        "local",
        "cells on this machine, one after another or --jobs N at once",
        _check_local,
        _launch_local,
        _describe_local,
    ),
)
