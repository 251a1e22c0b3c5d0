"""Cars196 (Krause et al. 2013): 196 car models, 16,185 images; classes 0-73 train, 74-97 val,
98-195 test (the paper's class-disjoint splits).

Two distributions are in circulation, both read into the same classes (``000``-``195``, the
1-based class index of the annotations minus one) and so the same splits: ``car_ims/`` with
``cars_annos.mat``, and the devkit one: ``cars_train/`` + ``devkit/cars_train_annos.mat``
(8,144 images) and ``cars_test/`` + ``cars_test_annos_withlabels.mat`` (8,041 images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import DataError
from ..dataset_spec import DatasetSpec, Entries, Layout, Splits
from ..registry import register
from ._paper import split_by_index

TRAIN_ANNOS = "devkit/cars_train_annos.mat"
TEST_ANNOS = "cars_test_annos_withlabels.mat"


def read_annos_mat(base: Path, images_dir: Path) -> tuple[Entries, Splits]:
    """cars_annos.mat: annotations.relative_im_path, annotations.class (1-based)."""
    mat_path = base / "cars_annos.mat"
    if not (base / "car_ims").is_dir():
        other = [n for n in ("cars_train", "cars_test") if (base / n).is_dir()]
        hint = (
            f" ({' and '.join(other)} are the devkit layout's images: pass {TRAIN_ANNOS} and "
            f"{TEST_ANNOS} with them)"
            if other
            else ""
        )
        raise DataError(
            f"{base}: cars_annos.mat lists car_ims/ images but there is no car_ims/ folder "
            f"(pass car_ims.tgz or the extracted car_ims folder too){hint}"
        )
    entries: Entries = []
    for record in _annotations(mat_path):
        label = int(record.__dict__["class"]) - 1
        path = str(record.relative_im_path)
        if not (base / path).is_file():
            raise DataError(
                f"{base / path}: listed in {mat_path.name} but missing "
                "(pass car_ims.tgz or the extracted car_ims folder too)"
            )
        entries.append((str(base.relative_to(images_dir) / path), f"{label:03d}"))
    return entries, _splits(entries)


def read_devkit(base: Path, images_dir: Path) -> tuple[Entries, Splits]:
    """cars_train/ + devkit/cars_train_annos.mat, cars_test/ + cars_test_annos_withlabels.mat
    (annotations.fname, annotations.class 1-based)."""
    train_dir, test_dir = _image_folder(base, "cars_train"), _image_folder(base, "cars_test")
    test_annos = next(
        (p for p in (base / TEST_ANNOS, base / "devkit" / TEST_ANNOS) if p.is_file()), None
    )
    missing = [
        what
        for what, found in (
            ("cars_train/ (cars_train.tgz)", train_dir),
            ("cars_test/ (cars_test.tgz)", test_dir),
            (TEST_ANNOS, test_annos),
        )
        if found is None
    ]
    if missing:
        hint = (
            " (car_ims/ holds the other layout's images: pass cars_annos.mat with it)"
            if (base / "car_ims").is_dir()
            else ""
        )
        raise DataError(
            f"{base}: the Cars196 devkit layout needs {', '.join(missing)} beside devkit/{hint}"
        )
    entries: Entries = []
    for mat_path, folder in ((base / TRAIN_ANNOS, train_dir), (test_annos, test_dir)):
        for record in _annotations(mat_path):
            path = folder / str(record.fname)
            if not path.is_file():
                raise DataError(f"{path}: listed in {mat_path.name} but missing")
            label = int(record.__dict__["class"]) - 1
            entries.append((str(path.relative_to(images_dir)), f"{label:03d}"))
    return entries, _splits(entries)


def _splits(entries: Entries) -> Splits:
    return split_by_index(sorted({label for _, label in entries}), 74, 98)


def _image_folder(base: Path, name: str) -> Path | None:
    """``base/name``, or ``base/name/name`` as some re-distributions nest it."""
    for folder in (base / name / name, base / name):
        if folder.is_dir():
            return folder
    return None


def _annotations(mat_path: Path) -> list[Any]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(f"reading {mat_path.name} needs scipy (`pip install scipy`)") from None
    try:
        annotations = loadmat(mat_path, squeeze_me=True, struct_as_record=False)["annotations"]
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{mat_path}: not a Cars196 annotation file ({exc})") from None
    return list(annotations.ravel()) if hasattr(annotations, "ravel") else [annotations]


CARS196 = register(
    DatasetSpec(
        "cars196",
        "Cars196 (Krause et al. 2013)",
        classes={"train": 74, "val": 24, "test": 98},
        layouts=(
            Layout(
                "car_ims + cars_annos.mat",
                "cars_annos.mat",
                read_annos_mat,
                "car_ims.tgz and cars_annos.mat (or their extracted folder)",
            ),
            Layout(
                "devkit: cars_train + cars_test + their annotations",
                TRAIN_ANNOS,
                read_devkit,
                f"cars_train.tgz, cars_test.tgz, car_devkit.tgz and {TEST_ANNOS}",
            ),
        ),
        missing_hint="make it with `bgbias data import cars196 SOURCE --root {root}`",
    )
)
