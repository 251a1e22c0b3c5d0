"""``bgbias reproduce``: every matching preset through training, evaluation (5 draws of the
test backgrounds) and attention scores, resumably, on this machine or a SLURM cluster.

Each preset is a *cell*, ``OUT/<dataset>/<loss>/<mode>/`` (see :mod:`.plan`); a finished cell is
skipped, a killed one resumes from its last checkpoint, a failed one does not stop the others,
and ``OUT/status.{json,md}`` say where every cell stands. ``bgbias report OUT --compare paper``
then writes the paper's two tables beside bgbias's numbers.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..config import compose
from ..launch import LAUNCHERS, Batch, LaunchOptions, SlurmOptions
from ..outputs import check_output, claim_output
from .cell import allow_runs, run_cell, terminate_children
from .plan import STAGES, Cell, find_cells, parse_stages, plan_cells
from .state import (
    current_state,
    read_state,
    stage_done,
    status_markdown,
    update_state,
    write_status,
)

log = logging.getLogger(__name__)


@dataclass
class Reproduction:
    """What a ``reproduce`` call planned and did."""

    cells: list[Cell]
    launched: list[Cell]
    skipped: dict[str, str]  # preset -> why (done, running elsewhere, queued)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the status table (not dry runs)
    plan: str = ""  # dry run: what would run

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["state"] == "failed"]

    def table(self) -> str:
        return status_markdown(self.rows)


def reproduce(
    pattern: str,
    out: str | os.PathLike,
    overrides: list[str] | tuple[str, ...] = (),
    stages: tuple[str, ...] | str = STAGES,
    launcher: str = "local",
    options: LaunchOptions | None = None,
    repeats: int = 5,
    attention_limit: int | None = None,
    dry_run: bool = False,
    resubmit: bool = False,
) -> Reproduction:
    """Plan the cells of the presets matching ``pattern`` under ``out`` and run (or submit)
    those not finished. The launcher, the configs and the photo sets are checked before
    anything is written; ``dry_run`` writes nothing and returns the plan."""
    options = options or LaunchOptions()
    check_output(out, "reproduce")  # a reproduction's own folder, or a new or empty one
    spec = LAUNCHERS.get(launcher)
    spec.check(options)
    cells = plan_cells(pattern, out, overrides, parse_stages(stages), repeats, attention_limit)
    todo, skipped = [], {}
    for cell in cells:
        state = current_state(cell) if cell.folder.exists() else "pending"
        if state in ("done", "running") or (state == "queued" and not resubmit):
            job = read_state(cell).get("job")
            skipped[cell.preset] = state + (
                f" (job {job}; --resubmit to submit again)" if state == "queued" else ""
            )
        else:
            todo.append(cell)
    if dry_run:
        batch = cell_batch(todo or cells, launcher, options)
        return Reproduction(
            cells, todo, skipped, plan=_plan_text(cells, todo, skipped, spec, batch, options)
        )
    claim_output(out, "reproduce")
    for cell in cells:
        _save(cell)
    if todo:
        log.info("%s: %d cell(s) to run, %d skipped", spec.name, len(todo), len(skipped))
        launched = spec.launch(cell_batch(todo, launcher, options), options)
        for cell, job in zip(todo, launched.jobs or (), strict=False):
            update_state(cell, state="queued", job=job, error=None)
        if options.wait:
            launched.wait()
    return Reproduction(cells, todo, skipped, rows=write_status(out, cells))


def cell_batch(cells: list[Cell], launcher: str, options: LaunchOptions) -> Batch:
    """The cells as a launcher's tasks: :func:`.cell.run_cell` of each cell's folder."""
    slurm = launcher == "slurm" and options.slurm.gpus is None
    return Batch(
        name="bgbias-reproduce",
        function=run_cell,
        arguments=[str(cell.folder) for cell in cells],
        folder=cells[0].root / ".submitit",
        gpus=gpus_per_job(cells) if slurm else 1,
        stop=terminate_children,
        start=allow_runs,
    )


def gpus_per_job(cells: list[Cell]) -> int:
    """The GPUs a cell's job asks for: the ``trainer.devices`` it trains with (1 for 'auto')."""
    devices = compose(cells[0].preset, [*cells[0].overrides]).trainer.devices
    if isinstance(devices, int):
        return max(devices, 1)  # -1 ("all") asks for one: pass --slurm-gpus N for more
    if isinstance(devices, str):
        return int(devices) if devices.isdigit() else max(1, len(devices.strip(",").split(",")))
    return max(1, len(devices))  # a list of device ids


def status(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The status rows of the reproduction in ``out`` (also written as status.json / .md)."""
    return write_status(out, find_cells(out))


def _save(cell: Cell) -> None:
    if (cell.folder / "cell.json").is_file():
        before = Cell.load(cell.folder)
        if before.overrides != cell.overrides:
            log.warning(
                "%s: overrides changed (%s -> %s); finished stages are kept",
                cell.preset,
                " ".join(before.overrides) or "none",
                " ".join(cell.overrides) or "none",
            )
    cell.save()


def _plan_text(cells, todo, skipped, spec, batch, options) -> str:
    lines = [
        f"{len(cells)} cell(s) under {cells[0].root}: {len(todo)} to run, {len(skipped)} skipped"
    ]
    for cell in cells:
        if cell.preset in skipped:
            lines.append(f"  {cell.preset}: {skipped[cell.preset]}")
            continue
        lines.append(f"  {cell.preset}:")
        for stage in cell.stages:
            done = stage_done(cell, stage)
            lines.append(f"    {'(done) ' if done else ''}bgbias {shlex.join(cell.command(stage))}")
    described = spec.describe(batch, options)
    if described:
        lines += ["", described]
    return "\n".join(lines)


__all__ = [
    "LAUNCHERS",
    "STAGES",
    "Cell",
    "LaunchOptions",
    "Reproduction",
    "SlurmOptions",
    "reproduce",
    "status",
]
