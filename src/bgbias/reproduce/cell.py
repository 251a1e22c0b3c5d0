"""Running one cell: its stages in order, each as the ``bgbias`` command a user would type, in
a child process whose output goes to the cell's log; finished stages are skipped, a killed
training resumes from its last checkpoint. The same function runs under every launcher
(in-process threads locally, a submitit job on SLURM).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from filelock import Timeout

from .plan import Cell
from .state import cell_lock, read_state, stage_done, update_state

log = logging.getLogger(__name__)
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()  # set when the launcher is told to stop


def run_cell(folder: str | os.PathLike, env: dict[str, str] | None = None) -> str:
    """Run the cell in ``folder`` (``env``: extra environment of its stage processes); returns
    its final state: ``done``, ``failed``, ``busy`` (another process is running it) or
    ``interrupted`` (stopped by :func:`terminate_children`; it resumes on the next run). Never
    raises for a failing stage: the failure, its log and its error line are recorded in the
    cell's state."""
    cell = Cell.load(folder)
    lock = cell_lock(cell)
    try:
        lock.acquire()
    except Timeout:
        return "busy"
    try:
        update_state(
            cell,
            state="running",
            stage=None,
            error=None,
            started=time.strftime("%Y-%m-%d %H:%M:%S"),
            host=socket.gethostname(),
            job=_job_id(),
        )
        for stage in cell.stages:
            if stage_done(cell, stage):
                continue
            if _stopping.is_set():
                return "interrupted"  # its state stays "running": shown as interrupted
            update_state(cell, stage=stage)
            code, error = run_stage(cell, stage, env)
            if _stopping.is_set():  # whatever the stage's exit code: not known to be complete
                return "interrupted"
            if code != 0:
                update_state(cell, state="failed", error=error, returncode=code)
                return "failed"
            update_state(cell, done=sorted({*read_state(cell)["done"], stage}))
        update_state(cell, state="done", stage=None)
        return "done"
    except Exception as exc:  # noqa: BLE001 - recorded as the cell's failure, never lost
        update_state(cell, state="failed", error=f"{type(exc).__name__}: {exc}")
        return "failed"
    finally:
        lock.release()


def run_stage(
    cell: Cell, stage: str, extra_env: dict[str, str] | None = None
) -> tuple[int, str | None]:
    """``python -m bgbias <stage command>`` with its output appended to the cell's log;
    returns the exit code and, on failure, the last error line of the output."""
    argv = [sys.executable, "-m", "bgbias", *cell.command(stage)]
    env = dict(os.environ) | (extra_env or {})
    if stage == "train" and "SLURM_JOB_ID" in env:
        # Lightning's documented escape from its SLURM environment (job name "interactive"):
        # the training launches its own DDP processes on the job's GPUs, whatever
        # --ntasks-per-node the cell's job has
        env["SLURM_JOB_NAME"] = "interactive"
    # SLURM signals every process of the job before its time limit; that warning is for
    # submitit (it requeues the job), the stage keeps running until the job ends
    before_exec = _ignore_usr2 if "SLURM_JOB_ID" in env else None
    with open(cell.log, "a", encoding="utf-8") as out:
        out.write(f"\n== {stage} ({time.strftime('%Y-%m-%d %H:%M:%S')}): {shlex.join(argv)}\n")
        out.flush()
        started = out.tell()
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=before_exec
        )
        with _children_lock:
            _children.add(process)
        try:
            code = process.wait()
        finally:
            with _children_lock:
                _children.discard(process)
    if code == 0:
        return 0, None
    return code, _error_line(cell.log, started) or f"{stage} exited with code {code}"


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def allow_runs() -> None:
    """Undo :func:`terminate_children`'s stop for a new launch in this process."""
    _stopping.clear()


def terminate_children() -> None:
    """Stop every stage process this process started (the launcher was told to stop)."""
    _stopping.set()
    with _children_lock:
        children = list(_children)
    for process in children:
        process.terminate()
    for process in children:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _error_line(path: Path, start: int) -> str | None:
    """The stage's ``bgbias: error:`` line, else its last non-empty line."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        handle.seek(start)
        lines = [line.strip() for line in handle if line.strip()]
    errors = [line for line in lines if line.startswith("bgbias: error:")]
    return (errors or lines or [None])[-1]


def _job_id() -> str:
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array:
        return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    return os.environ.get("SLURM_JOB_ID") or f"pid {os.getpid()}"
