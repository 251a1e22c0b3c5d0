"""Cars196 (Krause et al. 2013): 196 car models, 16,185 images; classes 0-73 train, 74-97 val,
98-195 test (PAPER.md section 2)."""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ..registry import DatasetSpec, Entries, Layout, Splits, register
from ._paper import paper_training, split_by_index


def read_annos_mat(base: Path, images_dir: Path) -> tuple[Entries, Splits]:
    """cars_annos.mat: annotations.relative_im_path, annotations.class (1-based)."""
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
    return entries, split_by_index(order, 74, 98)


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
        ),
        missing_hint="make it with `bgbias data import cars196 SOURCE --root {root}`",
        training=paper_training("data/cars196"),
        loss_params={
            "contrastive": {"params": {"pos_margin": 0.2652, "neg_margin": 0.5409}},
            "triplet": {"params": {"margin": 0.1190}},
            "multi_similarity": {"params": {"alpha": 14.359, "beta": 75.835, "base": 0.6616}},
            "arcface": {"params": {"margin": 20.522, "scale": 49.502}, "lr": 7.3985e-6},
            "normalized_softmax": {"params": {"temperature": 0.08863}, "lr": 1.1046e-2},
        },
    )
)
