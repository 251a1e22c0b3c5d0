"""Launchers run a batch of tasks: ``local`` (one after another, or N at once, on this
machine) and ``slurm`` (submitit: a job array or one job per task). A launcher is one registry
entry: a ``check`` that fails at once when it cannot start, and a ``launch`` for the tasks.
``bgbias reproduce`` (one task per cell), ``bgbias masks`` and ``bgbias index`` (one task per
shard) all launch through them. The ``slurm`` launcher registers itself on the first lookup
(a provider of :data:`LAUNCHERS`)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .options import LaunchOptions

log = logging.getLogger(__name__)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Batch:
    """Tasks to launch: ``function(argument, env)`` once per argument. ``function`` must be
    picklable (a module-level function: SLURM jobs unpickle it on a compute node); ``env`` is
    the extra environment for the processes a task starts (locally, with ``--jobs`` tasks at
    once and as many GPUs: one GPU each), or None."""

    name: str  # the SLURM job name, e.g. bgbias-masks
    function: Callable[[Any, dict[str, str] | None], Any]
    arguments: list[Any]
    folder: Path  # submitit's scripts and logs: on a file system the nodes share
    gpus: int = 1  # per SLURM job, when --slurm-gpus is not given
    stop: Callable[[], None] = _nothing  # local: stops the tasks' child processes on Ctrl-C
    start: Callable[[], None] = _nothing  # local: undoes an earlier stop in this process


@dataclass(frozen=True)
class Launched:
    """What a launch did: the tasks' results (local) or their SLURM job ids, in order;
    ``wait()`` blocks until submitted jobs end."""

    results: list[Any] | None = None
    jobs: list[str] | None = None
    folder: str | None = None
    wait: Callable[[], None] = _nothing


@dataclass(frozen=True)
class Launcher:
    name: str
    description: str
    check: Callable[[LaunchOptions], None]  # raises when the launcher cannot start
    launch: Callable[[Batch, LaunchOptions], Launched]
    describe: Callable[[Batch, LaunchOptions], str] = lambda batch, options: ""


LAUNCHERS: Registry[Launcher] = Registry("launcher", providers=("bgbias.launch.slurm",))


def launch(batch: Batch, launcher: str = "local", options: LaunchOptions | None = None) -> Launched:
    """Run (local) or submit (slurm) every task of ``batch``; see :data:`LAUNCHERS`. With
    ``options.wait``, submitted jobs are waited for."""
    options = options or LaunchOptions()
    spec = LAUNCHERS.get(launcher)
    spec.check(options)
    launched = spec.launch(batch, options)
    if options.wait:
        launched.wait()
    return launched


def _check_local(options: LaunchOptions) -> None:
    if options.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {options.jobs}")


def _launch_local(batch: Batch, options: LaunchOptions) -> Launched:
    """Run the tasks here, ``options.jobs`` at once. With several jobs and as many GPUs, each
    job gets its own GPU. SIGTERM or Ctrl-C stops the tasks' processes too (``batch.stop``);
    a stopped task resumes on the next run."""
    batch.start()
    slots = list(range(options.jobs))
    gpus = _gpu_count() if options.jobs > 1 else 0
    slot_lock = threading.Lock()

    def run(argument: Any) -> Any:
        with slot_lock:
            slot = slots.pop(0)
        try:
            share = options.jobs > 1 and gpus >= options.jobs
            return batch.function(argument, {"CUDA_VISIBLE_DEVICES": str(slot)} if share else None)
        finally:
            with slot_lock:
                slots.append(slot)

    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = ThreadPoolExecutor(max_workers=options.jobs)
    try:
        results = list(pool.map(run, batch.arguments))
    except KeyboardInterrupt:
        batch.stop()  # the running tasks stop, as interrupted (they resume next time)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return Launched(results=results)


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA: no GPUs to share out
        return 0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _describe_local(batch: Batch, options: LaunchOptions) -> str:
    return f"local: {len(batch.arguments)} task(s), {options.jobs} at once"


LAUNCHERS.register(
    "local",
    Launcher(
        "local",
        "tasks (cells, shards) on this machine, one after another or --jobs N at once",
        _check_local,
        _launch_local,
        _describe_local,
    ),
)
