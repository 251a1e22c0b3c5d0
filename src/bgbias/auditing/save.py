"""Writing an audit to OUT: the whole report (figures/, report.md, report.html, audit.json) is
built in a hidden folder beside the old one and swapped in at the end, so a failed run leaves
the previous complete report. During the swap the old ``audit.json`` goes first and the new one
comes last: a kill in those milliseconds leaves no ``audit.json``, never a mix that looks
complete. Nothing else in OUT is deleted: not files the audit did not write, not other jobs'
temporary folders (only a killed audit's own ``.audit.partial-*`` are cleared, under its lock).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..io import ensure_writable_dir, lock_folder, remove_tree, write_json
from .figures import Grid
from .report import write_reports

OUTPUTS = ("audit.json", "report.md", "report.html", "figures")
STAGING = ".audit.partial-"  # the hidden folder a report is built in
FIGURE_NAME = re.compile(r"(conditions|blend|retrieval_grid_\d+)\.png")


def prepare_out(out: str | os.PathLike) -> Path:
    """Create OUT if needed and check it can take a report: writable, and any ``figures/``
    there holds only an earlier audit's figures (the swap replaces that folder whole, so a
    folder of other files is refused rather than deleted). Call it before long work."""
    out = ensure_writable_dir(out)
    for name in OUTPUTS:
        path = out / name
        if name != "figures" and path.is_dir():
            raise OutputError(f"{path}: is a folder; the audit writes a file there")
    figures = out / "figures"
    if figures.is_symlink() or figures.is_file():
        raise OutputError(f"{figures}: not a folder the audit wrote; move it or pick another OUT")
    if figures.is_dir():
        foreign = sorted(p.name for p in figures.iterdir() if not FIGURE_NAME.fullmatch(p.name))
        if foreign:
            raise OutputError(
                f"{figures}: holds files bgbias audit did not write ({foreign[0]}, ...); move "
                "them or pick another output folder"
            )
    return out


def save_audit(audit: dict[str, Any], grids: dict[str, Grid], out: str | os.PathLike) -> Path:
    """Write ``audit`` (the audit.json content, verdicts set) and its report into OUT,
    replacing a previous audit's there only once everything is written. Returns OUT."""
    out = prepare_out(out)
    lock = lock_folder(out, "audit", leftovers=(f"{STAGING}*",))
    try:
        stage = out / f"{STAGING}{uuid.uuid4().hex[:12]}"
        stage.mkdir()
        try:
            write_reports(audit, grids, stage)
            write_json(stage / "audit.json", audit)
            _swap(stage, out)
        finally:
            remove_tree(stage)  # now holds only the replaced report, or a failed one
    finally:
        lock.release()
    return out


def _swap(stage: Path, out: Path) -> None:
    """Move OUT's old outputs into ``stage/replaced`` (audit.json first), then the new ones
    from ``stage`` into OUT (audit.json last); on an error, put the old ones back."""
    replaced = stage / "replaced"
    replaced.mkdir()
    moved_old, moved_new = [], []
    try:
        for name in OUTPUTS:  # audit.json first: OUT never pairs an old audit.json with new files
            if os.path.lexists(out / name):
                os.replace(out / name, replaced / name)
                moved_old.append(name)
        for name in ("figures", "report.md", "report.html", "audit.json"):
            os.replace(stage / name, out / name)
            moved_new.append(name)
    except OSError as exc:
        for name in moved_new:
            with contextlib.suppress(OSError):
                os.replace(out / name, stage / name)
        for name in moved_old:
            with contextlib.suppress(OSError):
                os.replace(replaced / name, out / name)
        raise OutputError(f"{out}: could not put the new report in place ({exc})") from None
