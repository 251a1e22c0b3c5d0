"""A run folder on disk: one training at a time (a lock), a previous run never silently mixed
with or replaced by a new one, checkpoints written atomically, and a metrics log that a resumed
run appends to."""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from ..errors import CheckpointError, ConfigError
from ..io import atomic_write, move_aside
from ..outputs import claim_output
from ..runs import read_checkpoint

LOCK_FILE = ".bgbias-train.lock"
RUN_FILES = ("config.yaml", "metrics.csv", "checkpoints", "tensorboard")


def resume_point(resume: Any, out: Path) -> tuple[Path, int] | None:
    """The checkpoint ``resume`` names (true: the run's last.ckpt) and the step it was saved
    at, checked readable now, not after the data is loaded."""
    if resume in (False, None, "false", "False", ""):
        return None
    path = out / "checkpoints" / "last.ckpt" if resume in (True, "true", "True") else Path(resume)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    return path, int(read_checkpoint(path).get("global_step", 0))


@contextlib.contextmanager
def claimed_run_folder(out: Path, resuming: bool, overwrite: bool) -> Iterator[Path]:
    """Hold ``out`` for one training: a run folder's own or a new or empty one
    (:func:`bgbias.outputs.claim_output`; an index or audit folder is refused); a second
    training there fails at once; a fresh run in a folder holding a previous run needs
    ``overwrite`` (the old run's files are moved aside, then deleted; nothing else is). DDP
    worker processes (rank > 0) share the launcher's claim."""
    if rank_zero_only.rank != 0:
        yield out
        return
    claim_output(out, "train")
    lock = FileLock(str(out / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(f"{out}: another training is running in this run folder") from None
    try:
        previous = [name for name in RUN_FILES if (out / name).exists()]
        if previous and not resuming:
            if not overwrite:
                raise ConfigError(
                    f"{out}: holds a previous run ({', '.join(previous)}); continue it with "
                    "resume=true, replace it with overwrite=true, or set another output_dir"
                )
            for name in previous:
                move_aside(out / name, delete=True)
        yield out
    finally:
        lock.release()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a killed run never leaves a
    half-written last.ckpt behind."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_write(path, "wb", durable=True) as handle:
            torch.save(checkpoint, handle)


class _AppendingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, resume_step: int | None = None):
        super().__init__(log_dir)
        if os.path.isfile(self.metrics_file_path):  # continue the header of a resumed run's log
            if resume_step is not None:
                drop_rows_after(Path(self.metrics_file_path), resume_step)
            with open(self.metrics_file_path, newline="") as handle:
                self.metrics_keys = sorted(next(csv.reader(handle), []))

    def _check_log_dir_exists(self) -> None:
        pass  # Lightning deletes metrics.csv here; a resumed run must append to it instead


def drop_rows_after(path: Path, step: int) -> None:
    """Remove the rows of steps after ``step``: a killed run logged them after its last
    checkpoint, and the run resumed from that checkpoint logs those steps again."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or "step" not in rows[0]:
        return
    column = rows[0].index("step")

    def after(row: list[str]) -> bool:
        try:
            return int(float(row[column])) > step
        except (IndexError, ValueError):
            return False

    kept = [row for row in rows[1:] if not after(row)]
    if len(kept) < len(rows) - 1:
        with atomic_write(path, "w") as handle:
            csv.writer(handle).writerows([rows[0], *kept])


class RunCSVLogger(CSVLogger):
    """Lightning's CSVLogger writing ``<run>/metrics.csv``, kept and appended on resume (less
    the rows logged after the checkpoint resumed from)."""

    def __init__(self, run: Path, resume_step: int | None = None):
        super().__init__(save_dir=str(run), name="", version="")
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, self._resume_step)
        return self._experiment


def loggers(out: Path, resume_step: int | None = None) -> list:
    """metrics.csv always; TensorBoard too where it is installed."""
    found = [RunCSVLogger(out, resume_step)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger
    except ImportError:
        return found
    return [*found, TensorBoardLogger(save_dir=str(out), name="tensorboard", version="")]
