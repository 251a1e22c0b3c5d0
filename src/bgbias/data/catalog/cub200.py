"""CUB-200-2011 (Wah et al. 2011): 200 bird species, 11,788 images; labels < 75 train, 75-99 val,
>= 100 test in ImageFolder order (the paper's class-disjoint splits)."""

from __future__ import annotations

from pathlib import Path

from ..dataset_spec import DatasetSpec, Entries, Layout, Splits
from ..registry import register
from ._paper import split_by_index


def read_image_folders(base: Path, images_dir: Path) -> tuple[Entries, Splits]:
    """CUB_200_2011/images/NNN.Name/*.jpg, classes in sorted (ImageFolder) order."""
    folder = base / "CUB_200_2011" / "images"
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    entries = []
    for name in classes:
        for image in sorted((folder / name).iterdir()):
            if image.suffix.lower() in (".jpg", ".jpeg", ".png") and image.is_file():
                entries.append((str(image.relative_to(images_dir)), name))
    return entries, split_by_index(classes, 75, 100)


CUB200 = register(
    DatasetSpec(
        "cub200",
        "CUB-200-2011 (Wah et al. 2011)",
        classes={"train": 75, "val": 25, "test": 100},
        layouts=(
            Layout(
                "CUB_200_2011",
                "CUB_200_2011/images",
                read_image_folders,
                "CUB_200_2011.tgz (or its extracted folder)",
            ),
        ),
        missing_hint="make it with `bgbias data import cub200 SOURCE --root {root}`",
    )
)
