"""Writing an audit to OUT under the output-folder contract (:mod:`bgbias.outputs`): OUT is
an audit's own folder (its marker) or a new or empty one; the whole report (figures/, report.md,
report.html, audit.json) is built in a stage folder inside OUT and swapped in at the end, so a
failed run, a kill or a full disk leaves the previous complete report. During the swap the old
``audit.json`` goes first and the new one comes last: a kill in those milliseconds leaves no
``audit.json``, never a mix that looks complete. Nothing else in OUT is deleted: not files the
audit did not write, not other jobs' temporary folders (only a dead audit's own stage, under
the audit lock).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..io import lock_folder, write_json
from ..outputs import check_output, claim_output, remove_dead_stages, staging, swap_in
from .figures import Grid
from .report import write_reports

OUTPUTS = ("audit.json", "report.md", "report.html", "figures")  # audit.json: the complete one
FIGURE_NAME = re.compile(r"(conditions|blend|retrieval_grid_\d+)\.png")


def prepare_out(out: str | os.PathLike) -> Path:
    """Check, writing nothing, that OUT can take a report (:func:`bgbias.outputs.check_output`),
    and that any ``figures/`` there holds only an earlier audit's figures (the swap replaces
    that folder whole, so a folder of other files is refused rather than deleted). Call it
    before long work."""
    out = check_output(out, "audit")
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
    out = claim_output(prepare_out(out), "audit")
    # under the lock no other audit is saving: an older bgbias's stage there is a killed one's
    lock = lock_folder(out, "audit", leftovers=(".audit.partial-*",))
    try:
        remove_dead_stages(out, "audit")
        with staging(out, "audit") as stage:
            write_reports(audit, grids, stage)
            write_json(stage / "audit.json", audit)
            swap_in(stage, out, OUTPUTS)
    finally:
        lock.release()
    return out
