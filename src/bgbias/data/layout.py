"""A dataset folder on disk: its images with their classes, its masks and its splits.

Every dataset bgbias reads is a folder in one of two layouts::

    ROOT/images/<class>/<file>           (folder tree: the class is the first folder), or
    ROOT/index.csv                       (header ``path,label``; paths relative to ROOT/images)
    ROOT/masks/<same relative path>.png  (one single-channel mask per image, same size)
    ROOT/splits.json                     ({"train": [classes], "val": [...], "test": [...]})

:func:`scan` lists one (problems collected, not raised); :mod:`bgbias.data.datasets` opens
its splits as torch datasets.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import image_files, is_image_file, read_text, write_json


def mask_file(masks_dir: Path, relative: str) -> Path:
    """Where the mask of image ``relative`` (a path under the images folder) lives: the one
    rule shared by `bgbias masks` (writing) and datasets (reading)."""
    return masks_dir / Path(relative).with_suffix(".png")


@dataclass
class Listing:
    """What a dataset root holds: every image with its class, and the problems found."""

    root: Path
    images: list[tuple[str, str]] = field(default_factory=list)  # (relative path, class)
    classes: list[str] = field(default_factory=list)
    splits: dict[str, list[str]] | None = None
    problems: list[str] = field(default_factory=list)
    images_dir: Path = None  # type: ignore[assignment]  # ROOT/images unless given
    masks_dir: Path = None  # type: ignore[assignment]  # ROOT/masks unless given

    def __post_init__(self):
        self.images_dir = self.root / "images" if self.images_dir is None else self.images_dir
        self.masks_dir = self.root / "masks" if self.masks_dir is None else self.masks_dir

    def mask_path(self, relative: str) -> Path:
        return mask_file(self.masks_dir, relative)


def scan(root: str | os.PathLike) -> Listing:
    """List images, classes and splits of ``root``; structural problems go to ``.problems``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    listing = Listing(root)
    images_dir = root / "images"
    index = root / "index.csv"
    if index.is_file():
        _scan_index(listing, index, images_dir)
    elif images_dir.is_dir():
        _scan_tree(listing, images_dir)
    else:
        raise DataError(
            f"{root}: not a dataset folder (expected {images_dir}/<class>/<image> or {index})"
        )
    listing.splits = _read_splits(listing)
    return listing


def scan_tree(images_dir: str | os.PathLike, masks_dir: str | os.PathLike | None) -> Listing:
    """List a plain class tree ``IMAGES/<class>/<image>`` (no splits) whose masks live in
    ``masks_dir`` (the :func:`mask_file` rule); problems go to ``.problems``."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: image folder not found")
    masks = None if masks_dir is None else Path(masks_dir)
    listing = Listing(images_dir, images_dir=images_dir, masks_dir=masks)
    _scan_tree(listing, images_dir)
    return listing


def _scan_tree(listing: Listing, images_dir: Path) -> None:
    for class_dir in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        files = image_files(class_dir, listing.problems)
        if not files:
            listing.problems.append(f"{class_dir}: empty class (no images)")
            continue
        listing.classes.append(class_dir.name)
        listing.images.extend((str(f.relative_to(images_dir)), class_dir.name) for f in files)
    stray = [p for p in images_dir.iterdir() if p.is_file() and is_image_file(p)]
    if stray:
        listing.problems.append(
            f"{images_dir}: {len(stray)} image(s) outside any class folder, e.g. {stray[0].name}"
        )


def _scan_index(listing: Listing, index: Path, images_dir: Path) -> None:
    seen: dict[str, None] = {}
    reader = csv.reader(io.StringIO(read_text(index), newline=""))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["path", "label"]:
        raise DataError(f"{index}: first line must be the header 'path,label'")
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            listing.problems.append(f"{index}:{line_no}: expected 'path,label', got {row!r}")
            continue
        relative, label = row[0].strip(), row[1].strip()
        if not (images_dir / relative).is_file():
            listing.problems.append(
                f"{images_dir / relative}: image file not found (listed in {index.name}:{line_no})"
            )
            continue
        listing.images.append((relative, label))
        seen.setdefault(label)
    listing.classes = list(seen)


def _read_splits(listing: Listing) -> dict[str, list[str]] | None:
    path = listing.root / "splits.json"
    if not path.is_file():
        return None
    try:
        splits = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable split file ({exc})") from None
    if not isinstance(splits, dict) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in splits.values()
    ):
        raise DataError(f"{path}: must map split names to lists of class names")
    if not splits:
        listing.problems.append(
            f'{path}: no split, so no class in any (expected {{"train": [classes], '
            '"val": [...], "test": [...]})'
        )
    owner: dict[str, str] = {}
    known = set(listing.classes)
    for split, members in splits.items():
        if not members:
            listing.problems.append(f"{path}: split {split!r} has no classes")
        for cls in members:
            if cls in owner and owner[cls] != split:
                listing.problems.append(
                    f"{path}: class {cls!r} is in both {owner[cls]!r} and {split!r} "
                    "(splits must be class-disjoint)"
                )
            owner[cls] = split
            if cls not in known:
                listing.problems.append(f"{path}: class {cls!r} of split {split!r} has no images")
    return splits


def write_class_split(
    root: str | os.PathLike, fractions: dict[str, float], seed: int | None = None
) -> dict[str, list[str]]:
    """Write ROOT/splits.json assigning whole classes to splits by ``fractions``.

    Classes are taken in sorted order (as the paper's splits are), or shuffled with ``seed``.
    """
    listing = scan(root)
    classes = sorted(listing.classes)
    if seed is not None:
        classes = [classes[i] for i in np.random.default_rng(seed).permutation(len(classes))]
    total = sum(fractions.values())
    splits, start = {}, 0
    names = list(fractions)
    for i, name in enumerate(names):
        end = (
            len(classes)
            if i == len(names) - 1
            else start + round(len(classes) * fractions[name] / total)
        )
        splits[name] = classes[start:end]
        start = end
    empty = [n for n, members in splits.items() if not members]
    if empty:
        raise DataError(f"{root}: {len(classes)} classes are too few for splits {names}")
    write_json(Path(root) / "splits.json", splits)
    return splits
