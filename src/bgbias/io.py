"""File I/O with clear errors and atomic writes (a killed job never leaves a half-written file).

Images and masks are decoded by :mod:`bgbias.decoding` (EXIF orientation, 16-bit files, which
masks are accepted, decompression bombs, reduced JPEG decoding: the rules are there).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from PIL import Image

from .errors import DataError, OutputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def image_files(root: Path, problems: list[str] | None = None) -> list[Path]:
    """Every image file under ``root``, sorted, following symbolic links (an imported dataset
    links to the user's extracted folder instead of copying it) but entering each real folder
    once: a link back to a folder already listed (a loop, or a second way into one folder) is
    skipped and reported in ``problems``."""
    found = []
    visited: dict[tuple[int, int], str] = {}
    for ancestor in Path(root).resolve().parents:  # a link up the tree is a loop too
        with contextlib.suppress(OSError):
            status = os.stat(ancestor)
            visited[(status.st_dev, status.st_ino)] = str(ancestor)
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            status = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        key = (status.st_dev, status.st_ino)
        if key in visited:
            dirs[:] = []
            if problems is not None:
                problems.append(
                    f"{folder}: symbolic link to {visited[key]}, which is already listed "
                    "(a link loop or a second way into one folder); not followed"
                )
            continue
        visited[key] = folder
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / f for f in files if is_image_file(Path(f)))
    return sorted(found)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", durable: bool = False
) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it into place on success.

    A killed process never leaves a partial file at ``path``; ``durable`` also fsyncs, which
    additionally survives an OS crash, at the cost of one disk flush per file.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide files from a shared team
        with os.fdopen(fd, mode) as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        # a write to the open file (a full disk) names no file, a failed rename the temporary
        # one: name the file the caller asked for instead
        if isinstance(exc, OSError) and exc.filename in (None, tmp) and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


_UMASK = os.umask(0)
os.umask(_UMASK)
LEFTOVER_PATTERNS = (".*.tmp", ".*.partial-*", ".*.replaced-*")  # what a killed job leaves


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create folder ``path`` if needed and check that files can be written in it, before any
    long work starts; an OS refusal (read-only, no space, not a folder) raises one line."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    return path


def move_aside(path: str | os.PathLike, delete: bool = False) -> Path:
    """Rename ``path`` to a hidden sibling (one atomic step), then delete it if asked: the
    original name never holds a half-deleted tree. Returns the sibling's path."""
    path = Path(path)
    aside = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex[:8]}")
    os.replace(path, aside)
    if delete:
        remove_tree(aside)
    return aside


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_leftovers(
    folder: str | os.PathLike, patterns: tuple[str, ...] = LEFTOVER_PATTERNS
) -> list[Path]:
    """Delete what killed jobs left in ``folder`` (temporary files, half-built and replaced
    trees; ``patterns``: the names a job owns, default every job's); call it only while
    holding the folder's lock. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = sorted({p for pattern in patterns for p in folder.glob(pattern)})
    for path in found:
        remove_tree(path)
    return found


def lock_folder(
    folder: str | os.PathLike, job: str, leftovers: tuple[str, ...] = LEFTOVER_PATTERNS
):
    """Take ``folder``'s lock for a ``job`` that writes there (a second one raises instead of
    waiting) and clear what killed jobs left (``leftovers``: name patterns; a job sharing the
    folder with other kinds of jobs passes only its own, whose lock it holds); the caller
    releases the returned lock."""
    from filelock import FileLock, Timeout

    folder = Path(folder)
    lock = FileLock(str(folder / f".bgbias-{job}.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(f"{folder}: another {job} job is writing here") from None
    remove_leftovers(folder, leftovers)
    return lock


def copy_file(source: str | os.PathLike, target: str | os.PathLike, durable: bool = False) -> None:
    """Copy ``source`` to ``target`` atomically (``durable``: fsync'd, see :func:`atomic_write`)."""
    with open(source, "rb") as src, atomic_write(target, "wb", durable=durable) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: str | os.PathLike) -> str:
    """A text file (CSV, listing) as UTF-8, with or without a byte order mark (Excel writes
    one); other encodings raise one line naming the file and line, never a guessed decoding."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON: a NaN or infinite float (a metric with no value) is written as null, never
    as the bare ``NaN`` other parsers reject; a writer says why where its schema has a null."""
    with atomic_write(path, "w") as handle:
        json.dump(finite(obj), handle, indent=2, sort_keys=False, allow_nan=False)
        handle.write("\n")


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (numpy's included) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def save_image(image: Image.Image, path: str | os.PathLike, **save_kwargs: Any) -> None:
    """Save a PIL image atomically; the format follows the suffix of ``path``."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image suffix")
    with atomic_write(path, "wb") as handle:
        image.save(handle, format=fmt, **save_kwargs)
