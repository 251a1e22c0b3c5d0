"""Cars196, CUB-200-2011 and Stanford Online Products as distributed, brought into the generic
layout with the paper's class-disjoint splits (PAPER.md section 2).

``import_dataset(name, sources, root)`` takes the official archives (extracted into
ROOT/images) or extracted folders (linked from ROOT/images, not copied), then writes
ROOT/index.csv (image path, class) and ROOT/splits.json.
"""

from __future__ import annotations

import csv
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..io import atomic_write, write_json

Entries = list[tuple[str, str]]  # (path relative to ROOT/images, class name)


@dataclass(frozen=True)
class OfficialFormat:
    marker: str  # a path that identifies the layout; readers get the folder holding it
    read: Callable[[Path, Path], tuple[Entries, dict[str, list[str]]]]
    expected: str  # the files a user should pass


def _read_cars196(base: Path, images_dir: Path) -> tuple[Entries, dict[str, list[str]]]:
    """cars_annos.mat: annotations.relative_im_path, annotations.class (1-based).
    Classes 0-73 train, 74-97 val, 98-195 test (0-based)."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError("reading cars_annos.mat needs scipy (`pip install scipy`)") from None
    mat_path = base / "cars_annos.mat"
    try:
        annotations = loadmat(mat_path, squeeze_me=True, struct_as_record=False)["annotations"]
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{mat_path}: not the Cars196 annotation file ({exc})") from None
    entries, classes = [], set()
    prefix = base.relative_to(images_dir)
    for record in annotations.ravel() if hasattr(annotations, "ravel") else [annotations]:
        label = int(record.__dict__["class"]) - 1
        path = str(record.relative_im_path)
        if not (base / path).is_file():
            raise DataError(
                f"{base / path}: listed in {mat_path.name} but missing "
                "(pass car_ims.tgz or the extracted car_ims folder too)"
            )
        entries.append((str(prefix / path), f"{label:03d}"))
        classes.add(label)
    order = [f"{c:03d}" for c in sorted(classes)]
    return entries, _split_by_index(order, 74, 98)


def _read_cub200(base: Path, images_dir: Path) -> tuple[Entries, dict[str, list[str]]]:
    """images/NNN.Name/*.jpg in ImageFolder order: labels < 75 train, 75-99 val, >= 100 test."""
    folder = base / "CUB_200_2011" / "images"
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    entries = []
    for name in classes:
        for image in sorted((folder / name).iterdir()):
            if image.suffix.lower() in (".jpg", ".jpeg", ".png") and image.is_file():
                entries.append((str(image.relative_to(images_dir)), name))
    return entries, _split_by_index(classes, 75, 100)


def _read_sop(base: Path, images_dir: Path) -> tuple[Entries, dict[str, list[str]]]:
    """Ebay_train.txt / Ebay_test.txt (``image_id class_id super_class_id path``, 1-based):
    train classes < 8489 (0-based) train, the rest of Ebay_train val, Ebay_test test."""
    base = base / "Stanford_Online_Products"
    entries: Entries = []
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    prefix = base.relative_to(images_dir)
    for filename in ("Ebay_train.txt", "Ebay_test.txt"):
        seen: dict[int, None] = {}
        path = base / filename
        with open(path) as handle:
            header = handle.readline().split()
            if header[:4] != ["image_id", "class_id", "super_class_id", "path"]:
                raise DataError(f"{path}: unexpected header {header}")
            for line_no, line in enumerate(handle, start=2):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 4:
                    raise DataError(f"{path}:{line_no}: expected 4 fields, got {line.strip()!r}")
                class_id = int(fields[1])
                entries.append((str(prefix / fields[3]), str(class_id)))
                seen.setdefault(class_id)
        for class_id in sorted(seen):
            if filename == "Ebay_test.txt":
                splits["test"].append(str(class_id))
            else:
                splits["train" if class_id - 1 < 8489 else "val"].append(str(class_id))
    return entries, splits


def _split_by_index(classes: list[str], val_start: int, test_start: int) -> dict[str, list[str]]:
    return {
        "train": classes[:val_start],
        "val": classes[val_start:test_start],
        "test": classes[test_start:],
    }


FORMATS = {
    "cars196": OfficialFormat(
        "cars_annos.mat",
        _read_cars196,
        "car_ims.tgz and cars_annos.mat (or their extracted folder)",
    ),
    "cub200": OfficialFormat(
        "CUB_200_2011/images", _read_cub200, "CUB_200_2011.tgz (or its extracted folder)"
    ),
    "sop": OfficialFormat(
        "Stanford_Online_Products/Ebay_train.txt",
        _read_sop,
        "Stanford_Online_Products.zip (or its extracted folder)",
    ),
}


def import_dataset(name: str, sources: list[str | os.PathLike], root: str | os.PathLike) -> dict:
    """Lay out dataset ``name`` from its official ``sources`` under ``root``; returns a summary."""
    if name not in FORMATS:
        raise DataError(f"unknown dataset {name!r}; importable: {', '.join(FORMATS)}")
    fmt = FORMATS[name]
    root = Path(root)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for source in map(Path, sources):
        _bring(source, images_dir)
    base = _find(images_dir, fmt.marker)
    if base is None:
        raise DataError(
            f"{', '.join(map(str, sources))}: no {fmt.marker} inside; {name} expects {fmt.expected}"
        )
    entries, splits = fmt.read(base, images_dir)
    with atomic_write(root / "index.csv", "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows(entries)
    write_json(root / "splits.json", splits)
    summary = {
        "dataset": name,
        "images": len(entries),
        "splits": {split: len(classes) for split, classes in splits.items()},
    }
    write_json(
        root / "dataset.json", summary | {"sources": [str(Path(s).resolve()) for s in sources]}
    )
    return summary


def _bring(source: Path, images_dir: Path) -> None:
    """Archive: extract; folder: link; other file: copy (into ``images_dir``)."""
    if source.is_dir():
        link = images_dir / source.resolve().name
        if not link.exists():
            link.symlink_to(source.resolve(), target_is_directory=True)
        return
    if not source.is_file():
        raise DataError(f"{source}: not found")
    name = source.name.lower()
    if name.endswith((".tgz", ".tar.gz", ".tar")):
        with tarfile.open(source) as archive:
            archive.extractall(images_dir, filter="data")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(source) as archive:
            for member in archive.namelist():
                target = (images_dir / member).resolve()
                if not target.is_relative_to(images_dir.resolve()):
                    raise DataError(f"{source}: unsafe path {member!r} in archive")
            archive.extractall(images_dir)
    else:
        shutil.copy2(source, images_dir / source.name)


def _find(images_dir: Path, marker: str, depth: int = 3) -> Path | None:
    """The folder under ``images_dir`` (``depth`` levels, links followed) holding ``marker``."""
    frontier = [images_dir]
    for _ in range(depth + 1):
        for folder in frontier:
            if (folder / marker).exists():
                return folder
        frontier = [c for f in frontier for c in sorted(f.iterdir()) if c.is_dir()]
    return None


__all__ = ["FORMATS", "import_dataset"]
