"""Where each cell stands (``state.json``), and the status table of a whole reproduction
(``status.json`` and ``status.md``).

States: ``pending`` (not started), ``queued`` (submitted to the scheduler), ``running``,
``done``, ``failed`` (the stage, its error line and the log are recorded), and
``interrupted`` (it was running, but no process holds the cell any more: killed, or timed out).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..errors import ConfigError
from ..io import write_json, write_text
from ..tabular import MISSING, markdown_table, mean_std
from .plan import Cell

STATE_FILE = "state.json"
LOCK_FILE = ".cell.lock"
STATE_HINT = "delete it to run the cell's stages again"


def read_state(cell: Cell) -> dict[str, Any]:
    """The cell's state file; none yet is a pending cell, a damaged one (written only by
    bgbias, atomically: someone edited it) an error naming it."""
    path = cell.folder / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        state = {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: damaged state file ({exc}); {STATE_HINT}") from None
    if not (
        isinstance(state, dict)
        and isinstance(state.get("state", ""), str)
        and isinstance(state.get("done", []), list)
    ):
        raise ConfigError(
            f"{path}: damaged state file (expected an object with a 'state' text and a "
            f"'done' list); {STATE_HINT}"
        )
    return {"state": "pending", "done": [], **state}


def update_state(cell: Cell, **changes: Any) -> dict[str, Any]:
    state = read_state(cell) | changes | {"updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(cell.folder / STATE_FILE, state)
    return state


def cell_lock(cell: Cell) -> FileLock:
    """Held by the process running the cell: a second one never runs it at the same time."""
    cell.folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(cell.folder / LOCK_FILE), timeout=0)


def is_running(cell: Cell) -> bool:
    lock = cell_lock(cell)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def stage_done(cell: Cell, stage: str, state: dict[str, Any] | None = None) -> bool:
    state = read_state(cell) if state is None else state
    return stage in state["done"] and cell.output(stage).is_file()


def cell_done(cell: Cell, state: dict[str, Any] | None = None) -> bool:
    state = read_state(cell) if state is None else state
    return all(stage_done(cell, s, state) for s in cell.stages)


def current_state(cell: Cell) -> str:
    """The cell's state now: ``running`` only while a process holds it."""
    state = read_state(cell)
    if cell_done(cell, state):
        return "done"
    if is_running(cell):
        return "running"
    if state["state"] == "running":
        return "interrupted"
    if state["state"] == "done":  # finished before more stages were asked for
        return "pending"
    return state["state"]


def status_rows(cells: list[Cell]) -> list[dict[str, Any]]:
    """One row per cell: its state, stage, results so far, log and last error."""
    rows = []
    for cell in cells:
        state = read_state(cell)
        row: dict[str, Any] = {
            "preset": cell.preset,
            "state": current_state(cell),
            "stage": state.get("stage"),
            "done": [s for s in cell.stages if stage_done(cell, s, state)],
            "job": state.get("job"),
            "log": str(cell.log),
            "error": state.get("error"),
        }
        row.update(_results(cell))
        rows.append(row)
    return rows


def _results(cell: Cell) -> dict[str, Any]:
    found: dict[str, Any] = {"clean": None, "corrupted": None, "attention": None}
    try:
        evaluation = json.loads(cell.evaluation.read_text())
        found["clean"] = evaluation["clean"]["map_at_r"]
        found["corrupted"] = (evaluation.get("corrupted") or {}).get("map_at_r", {}).get("mean")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        summary = json.loads(cell.output("attention").read_text())
        found["attention"] = next(iter(summary.values()))["mean"]
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        pass
    return found


def status_markdown(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    header = ["cell", "state", "stages done", "clean MAP@R", "corrupted MAP@R", "attention"]
    table = []
    for row in rows:
        note = row["log"]
        if row["state"] == "failed":
            note = f"{row['stage']} failed: {row['error']} ({row['log']})"
        table.append(
            [
                row["preset"],
                row["state"],
                ",".join(row["done"]) or MISSING,
                mean_std(row["clean"], scale=100),
                mean_std(row["corrupted"], scale=100),
                mean_std(row["attention"], digits=3),
                note,
            ]
        )
    lines = [f"{len(rows)} cells: {summary}", "", *markdown_table([*header, "log / error"], table)]
    return "\n".join(lines) + "\n"


def write_status(out: str | os.PathLike, cells: list[Cell]) -> list[dict[str, Any]]:
    """``OUT/status.json`` and ``OUT/status.md``; returns the rows."""
    rows = status_rows(cells)
    write_json(Path(out) / "status.json", rows)
    write_text(Path(out) / "status.md", status_markdown(rows))
    return rows
