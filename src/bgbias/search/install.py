"""Put a finished build in place at OUT: the files a build owns there, a full disk reported as
one line, and the swap by renames that replaces an older index (the user's files carried over).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..io import move_aside, remove_tree
from ..outputs import MARKER, mark_output
from .chunks import PLAN
from .faiss_store import FAISS_FILES
from .index import ITEMS, MANIFEST, THUMBS

# what a build writes into OUT (anything else there is the user's, and kept by a rebuild)
INDEX_OUTPUTS = {MANIFEST, ITEMS, THUMBS, PLAN, "chunks", MARKER, *FAISS_FILES.values()}
WRITE_FAILURES = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}  # no room to write


@contextlib.contextmanager
def no_room_is_one_line(out: Path):
    """A full disk (or quota, or file size limit) as one line: the finished chunks stay, and
    no manifest is written, so a rerun with room resumes and nothing half-built loads."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_FAILURES:
            raise
        where = exc.filename or "a file of the build"
        raise OutputError(
            f"{out}: cannot write {where} ({exc.strerror or exc}); the build resumes when run "
            "again with room"
        ) from None


def manifest_index(out: Path) -> dict[str, Any] | None:
    """The ``index`` section of the index at ``out`` that a build replaces (its Milvus
    collection is dropped once the new index is in place)."""
    try:
        return json.loads((out / MANIFEST).read_text()).get("index")
    except (OSError, ValueError):
        return None


def install(work: Path, out: Path) -> None:
    """Put the finished build folder at ``out``, replacing an older index there; files the
    build did not write (a user's notes) move into the new folder first."""
    mark_output(work, "index")
    if out.is_dir():
        for entry in out.iterdir():
            if entry.name not in INDEX_OUTPUTS and not os.path.lexists(work / entry.name):
                os.replace(entry, work / entry.name)
    aside = move_aside(out) if out.exists() else None
    os.replace(work, out)
    if aside is not None:
        remove_tree(aside)
