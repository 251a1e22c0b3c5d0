"""Stanford Online Products (Oh Song et al. 2016): 22,634 products, 120,053 images; Ebay_train
classes < 8489 (0-based) train, the rest val, Ebay_test test (the paper's class-disjoint splits)."""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ..dataset_spec import DatasetSpec, Entries, Layout, Splits
from ..registry import register

TRAIN_CLASSES = 8489


def read_ebay_lists(base: Path, images_dir: Path) -> tuple[Entries, Splits]:
    """Ebay_train.txt / Ebay_test.txt (``image_id class_id super_class_id path``, 1-based)."""
    base = base / "Stanford_Online_Products"
    entries: Entries = []
    splits: Splits = {"train": [], "val": [], "test": []}
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
                splits["train" if class_id - 1 < TRAIN_CLASSES else "val"].append(str(class_id))
    return entries, splits


SOP = register(
    DatasetSpec(
        "sop",
        "Stanford Online Products (Oh Song et al. 2016)",
        classes={"train": 8489, "val": 2829, "test": 11316},
        layouts=(
            Layout(
                "Ebay_train.txt + Ebay_test.txt",
                "Stanford_Online_Products/Ebay_train.txt",
                read_ebay_lists,
                "Stanford_Online_Products.zip (or its extracted folder)",
            ),
        ),
        missing_hint="make it with `bgbias data import sop SOURCE --root {root}`",
    )
)
