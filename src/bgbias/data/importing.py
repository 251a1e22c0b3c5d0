"""`bgbias data import`: a dataset as distributed, brought into the generic layout.

``import_dataset(name, sources, root)`` takes the official archives (extracted into
ROOT/images) or extracted folders (linked from ROOT/images, not copied), recognises one of the
dataset's layouts (:class:`bgbias.data.dataset_spec.Layout`), then writes ROOT/index.csv (image
path, class), ROOT/splits.json (the paper's class-disjoint splits) and ROOT/dataset.json.
"""

from __future__ import annotations

import csv
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from ..errors import DataError
from ..io import atomic_write, write_json
from .registry import DATASETS


def import_dataset(name: str, sources: list[str | os.PathLike], root: str | os.PathLike) -> dict:
    """Lay out dataset ``name`` from its official ``sources`` under ``root``; returns a summary."""
    spec = DATASETS.get(name)
    if not spec.layouts:
        importable = [n for n in DATASETS if DATASETS.get(n).layouts]
        raise DataError(
            f"dataset {name!r} has no official files to import; importable: {', '.join(importable)}"
        )
    root = Path(root)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for source in map(Path, sources):
        _bring(source, images_dir)
    for layout in spec.layouts:
        base = _find(images_dir, layout.marker)
        if base is not None:
            break
    else:
        markers = " or ".join(layout.marker for layout in spec.layouts)
        expected = "; or ".join(layout.expected for layout in spec.layouts)
        raise DataError(
            f"{', '.join(map(str, sources))}: no {markers} inside; {name} expects {expected}"
        )
    entries, splits = layout.read(base, images_dir)
    with atomic_write(root / "index.csv", "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows(entries)
    write_json(root / "splits.json", splits)
    summary = {
        "dataset": name,
        "layout": layout.name,
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


__all__ = ["import_dataset"]
