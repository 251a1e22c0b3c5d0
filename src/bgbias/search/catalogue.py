"""A catalogue to index: every image with a stable id and an optional label, from any layout.

* a CSV file with a header naming ``path`` and optionally ``id`` and ``label`` (paths relative
  to the CSV's folder, or absolute; the id defaults to the path);
* a bgbias dataset folder (``ROOT/images/...`` with ``index.csv`` or class folders, optionally
  ``splits.json``: ``split`` picks one split's classes);
* any other folder: every image under it, the id its relative path, the label its top folder
  (``ROOT/<class>/<image>``), none for images directly in ``ROOT``.

Each layout is one entry of :data:`LAYOUTS`, tried in order.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data.layout import scan
from ..errors import DataError, DataProblems
from ..io import image_files, read_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogueItem:
    id: str
    path: Path
    label: str | None = None


@dataclass
class Catalogue:
    source: Path
    layout: str
    items: list[CatalogueItem]
    split: str | None = None


@dataclass(frozen=True)
class CatalogueLayout:
    name: str
    matches: Callable[[Path], bool]
    read: Callable[[Path, str | None], list[CatalogueItem]]
    description: str


def _read_csv(path: Path, split: str | None) -> list[CatalogueItem]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if "path" not in header:
        raise DataError(f"{path}: the header must name a 'path' column (and optionally id, label)")
    reader.fieldnames = header
    items, problems = [], []
    for line_no, row in enumerate(reader, start=2):
        relative = (row.get("path") or "").strip()
        if not relative:
            if any((v or "").strip() for v in row.values()):
                problems.append(f"{path}:{line_no}: no path")
            continue
        file = (path.parent / relative).resolve()
        if not file.is_file():
            problems.append(f"{file}: image file not found (listed in {path.name}:{line_no})")
            continue
        label = (row.get("label") or "").strip() or None
        items.append(CatalogueItem((row.get("id") or "").strip() or relative, file, label))
    if problems:
        raise DataProblems(path, problems)
    return items


def _read_dataset(root: Path, split: str | None) -> list[CatalogueItem]:
    listing = scan(root)
    for problem in listing.problems:
        log.warning("%s", problem)
    classes = None
    if split is not None:
        if listing.splits is None:
            raise DataError(f"{root}: no splits.json, so no split {split!r}")
        if split not in listing.splits:
            raise DataError(
                f"{root}/splits.json: no split {split!r} (has: {', '.join(listing.splits)})"
            )
        classes = set(listing.splits[split])
    return [
        CatalogueItem(relative, root / "images" / relative, label)
        for relative, label in listing.images
        if classes is None or label in classes
    ]


def _read_folder(root: Path, split: str | None) -> list[CatalogueItem]:
    if split is not None:
        raise DataError(f"{root}: a plain image folder has no splits (drop --split)")
    items, problems = [], []
    files = image_files(root, problems)
    for problem in problems:  # link loops: listed once, reported
        log.warning("%s", problem)
    for file in files:
        parts = file.relative_to(root).parts
        items.append(CatalogueItem("/".join(parts), file, parts[0] if len(parts) > 1 else None))
    return items


LAYOUTS = (
    CatalogueLayout(
        "csv",
        lambda p: p.is_file() and p.suffix.lower() == ".csv",
        _read_csv,
        "a CSV with columns path[,id][,label]",
    ),
    CatalogueLayout(
        "dataset",
        lambda p: p.is_dir() and ((p / "images").is_dir() or (p / "index.csv").is_file()),
        _read_dataset,
        "a bgbias dataset folder (ROOT/images, index.csv, splits.json)",
    ),
    CatalogueLayout(
        "folder", lambda p: p.is_dir(), _read_folder, "a folder of images (ROOT/<label>/<image>)"
    ),
)


def read_catalogue(source: str | os.PathLike, split: str | None = None) -> Catalogue:
    """Every image of ``source`` (see the module docstring), sorted by id; ids are unique."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: catalogue not found")
    layout = next((entry for entry in LAYOUTS if entry.matches(source)), None)
    if layout is None:
        raise DataError(
            f"{source}: not a catalogue; pass "
            + " or ".join(entry.description for entry in LAYOUTS)
        )
    items = layout.read(source, split)
    if not items:
        raise DataError(f"{source}: no images found ({layout.description})")
    seen: dict[str, CatalogueItem] = {}
    for item in items:
        if item.id in seen:
            raise DataError(
                f"{source}: id {item.id!r} is used twice ({seen[item.id].path}, {item.path})"
            )
        seen[item.id] = item
    return Catalogue(source, layout.name, sorted(items, key=lambda item: item.id), split)
