"""One output-folder contract for every command that writes a folder.

* A command writes only into a folder it created or one that carries its own marker
  (``.bgbias-output.json``: ``{"kind": "audit", "version": 1}``). A new or empty folder is
  claimed (the marker is written); a folder with the command's marker is reused; a folder an
  older bgbias wrote before markers existed is recognised by its bgbias-specific content (an
  index's manifest with ``bgbias_version``, a run's composed ``config.yaml``..., never a bare
  file name) and claimed; anything else, another kind's marker included, is refused with one
  line naming the folder, before anything is written.
* :func:`check_output` is the read-only half: commands call it before validating their inputs,
  and :func:`claim_output` only once every input is known good.
* A result is built in a stage folder inside OUT (:func:`staging`) and swapped in by renames
  at the end (:func:`swap_in`), so the previous complete result survives a failure, a kill or
  a full disk. Stage names carry the kind and the process id: a job only ever deletes its own
  stage, and a dead job's stage of the same kind only under that kind's lock once its process
  is provably gone (:func:`remove_dead_stages`); nothing else is cleared automatically.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .errors import OutputError
from .io import ensure_writable_dir, remove_tree, write_json

MARKER = ".bgbias-output.json"
VERSION = 1
STAGE_PREFIX = ".bgbias-stage-"
OWN_PREFIX = ".bgbias-"  # the marker, locks and stages: they never make a folder "used"


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_index(folder: Path) -> bool:
    manifest = _json(folder / "manifest.json")
    return isinstance(manifest, dict) and {"bgbias_version", "format", "index"} <= manifest.keys()


def _is_run(folder: Path) -> bool:
    """A training run folder: the composed config bgbias writes (output_dir, data, model)."""
    import yaml

    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(config, dict) and {"output_dir", "data", "model"} <= config.keys()


def _is_audit(folder: Path) -> bool:
    audit = _json(folder / "audit.json")
    return isinstance(audit, dict) and {"models", "provenance"} <= audit.keys()


def _is_benchmark(folder: Path) -> bool:
    manifest = _json(folder / "benchmark.json")
    return isinstance(manifest, dict) and {"format_version", "config", "splits"} <= manifest.keys()


def _is_attention(folder: Path) -> bool:
    for meta in folder.glob("*.meta.json"):
        saved = _json(meta)
        if isinstance(saved, dict) and {"samples", "noise_level"} <= saved.keys():
            return True
    return False


def _is_demo(folder: Path) -> bool:
    results = _json(folder / "results.json")
    return (isinstance(results, dict) and "conclusion" in results) or _is_benchmark(
        folder / "benchmark"
    )


def _is_reproduction(folder: Path) -> bool:
    """Its status table (rows naming a preset and a state) or a cell (OUT/<dataset>/<loss>/
    <mode>/cell.json)."""
    rows = _json(folder / "status.json")
    if (
        isinstance(rows, list)
        and rows
        and all(isinstance(row, dict) and {"preset", "state"} <= row.keys() for row in rows)
    ):
        return True
    return any(isinstance(_json(cell), dict) for cell in folder.glob("*/*/*/cell.json"))


# kind -> how an older bgbias's folder of that kind is recognised (None: no older layout)
KINDS: dict[str, Callable[[Path], bool] | None] = {
    "train": _is_run,
    "index": _is_index,
    "audit": _is_audit,
    "attention": _is_attention,
    "demo": _is_demo,
    "benchmark": _is_benchmark,
    "reproduce": _is_reproduction,
}


def marker_kind(folder: str | os.PathLike) -> str | None:
    """The kind in ``folder``'s marker, or None (no marker or an unreadable one)."""
    saved = _json(Path(folder) / MARKER)
    return saved.get("kind") if isinstance(saved, dict) else None


def contents(folder: str | os.PathLike) -> list[str]:
    """The names in ``folder`` that make it used (bgbias's marker, locks and stages do not)."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith(OWN_PREFIX))


def _other_kind(out: Path, found: str, kind: str) -> str:
    return f"{out}: holds a bgbias {found} output, not a {kind} one; choose an empty or new folder"


def check_output(path: str | os.PathLike, kind: str) -> Path:
    """``path`` if ``kind``'s command may write there (new, empty, its own marker, or its own
    older output); else raises one line naming the folder. Writes nothing."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    out = Path(path)
    if not out.exists():
        if out.is_symlink():
            raise OutputError(f"{out}: a broken symbolic link; choose an empty or new folder")
        return out
    if not out.is_dir():
        raise OutputError(f"{out}: is a file, not a folder; choose an empty or new folder")
    found = marker_kind(out)
    if found == kind:
        return out
    try:
        used = contents(out)
    except OSError as exc:
        raise OutputError(f"{out}: cannot be read ({exc.strerror or exc})") from None
    if found is not None:
        raise OutputError(_other_kind(out, found, kind))
    if not used:
        return out
    # an older bgbias's output, recognised by its content: this command's is reused
    recognised = [name for name, known in KINDS.items() if known is not None and known(out)]
    if kind in recognised:
        return out
    if recognised:
        raise OutputError(_other_kind(out, recognised[0], kind))
    shown = ", ".join(used[:3]) + (", ..." if len(used) > 3 else "")
    raise OutputError(
        f"{out}: holds files bgbias did not write ({shown}); choose an empty or new folder"
    )


def claim_output(path: str | os.PathLike, kind: str) -> Path:
    """Check ``path`` (:func:`check_output`), create it and mark it as ``kind``'s; call it
    only after every input is checked. Returns the folder."""
    out = check_output(path, kind)
    ensure_writable_dir(out)
    if marker_kind(out) != kind:
        mark_output(out, kind)
    return out


def mark_output(folder: str | os.PathLike, kind: str) -> None:
    """Write ``kind``'s marker into ``folder`` (a command that builds its whole folder beside
    OUT marks the new one before it takes OUT's place)."""
    try:
        write_json(Path(folder) / MARKER, {"kind": kind, "version": VERSION})
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write here ({exc.strerror or exc})") from None


def _stage_name(kind: str) -> str:
    return f"{STAGE_PREFIX}{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def staging(out: str | os.PathLike, kind: str) -> Iterator[Path]:
    """A fresh stage folder inside the claimed ``out`` (same disk: renames are atomic),
    removed when the block ends, whether the result was swapped in or not."""
    stage = Path(out) / _stage_name(kind)
    stage.mkdir()
    try:
        yield stage
    finally:
        remove_tree(stage)


def swap_in(stage: Path, out: Path, names: Sequence[str]) -> None:
    """Replace ``names`` in ``out`` by those in ``stage``, by renames. ``names[0]`` is the file
    that marks a result complete: it leaves first and arrives last, so a kill in between
    leaves no such file, never an old one beside new files. Old entries go into
    ``stage/replaced`` (deleted with the stage); on an error they are put back."""
    replaced = stage / "replaced"
    replaced.mkdir()
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for name in names:
            if os.path.lexists(out / name):
                os.replace(out / name, replaced / name)
                moved_old.append(name)
        for name in [*names[1:], names[0]]:
            if os.path.lexists(stage / name):
                os.replace(stage / name, out / name)
                moved_new.append(name)
    except OSError as exc:
        for name in moved_new:
            with contextlib.suppress(OSError):
                os.replace(out / name, stage / name)
        for name in moved_old:
            with contextlib.suppress(OSError):
                os.replace(replaced / name, out / name)
        raise OutputError(f"{out}: could not put the new result in place ({exc})") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_dead_stages(out: str | os.PathLike, kind: str) -> list[Path]:
    """Delete ``kind``'s stage folders in ``out`` whose process no longer runs (a killed
    job's); call it only holding ``kind``'s lock on ``out``. Other kinds' stages and every
    other file are left alone. Returns what was removed."""
    removed = []
    for stage in Path(out).glob(f"{STAGE_PREFIX}{kind}-*"):
        pid = stage.name[len(STAGE_PREFIX) + len(kind) + 1 :].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            remove_tree(stage)
            removed.append(stage)
    return removed
