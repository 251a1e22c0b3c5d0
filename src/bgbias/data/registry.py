"""Datasets by name: what each needs to be ready, and the paper's split sizes to check against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..registry import Registry
from .datasets import FolderDataset, Transform


@dataclass(frozen=True)
class DatasetSpec:
    """``classes``: expected class count per split (the paper's), checked when opening;
    ``prepare(root)`` makes a missing root ready (the generated benchmark generates itself);
    ``missing_hint`` tells the user how to make a root when there is no ``prepare``."""

    name: str
    description: str
    classes: dict[str, int] | None = None
    prepare: Callable[[Path], None] | None = None
    missing_hint: str = "bring it into the generic folder layout (see `bgbias data check --help`)"


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _generate_default(root: Path) -> None:
    from .generate import generate_benchmark

    generate_benchmark(root)


DATASETS.register("folder", DatasetSpec("folder", "any dataset in the generic folder layout"))
DATASETS.register(
    "generated",
    DatasetSpec(
        "generated", "the generated benchmark (`bgbias data generate`)", prepare=_generate_default
    ),
)
DATASETS.register(
    "cars196",
    DatasetSpec(
        "cars196",
        "Cars196 (Krause et al. 2013)",
        {"train": 74, "val": 24, "test": 98},
        missing_hint="make it with `bgbias data import cars196 SOURCE --root {root}`",
    ),
)
DATASETS.register(
    "cub200",
    DatasetSpec(
        "cub200",
        "CUB-200-2011 (Wah et al. 2011)",
        {"train": 75, "val": 25, "test": 100},
        missing_hint="make it with `bgbias data import cub200 SOURCE --root {root}`",
    ),
)
DATASETS.register(
    "sop",
    DatasetSpec(
        "sop",
        "Stanford Online Products (Oh Song et al. 2016)",
        {"train": 8489, "val": 2829, "test": 11316},
        missing_hint="make it with `bgbias data import sop SOURCE --root {root}`",
    ),
)


def open_split(
    dataset: str,
    root: str | Path,
    split: str,
    transform: Transform | None = None,
    require_masks: bool = False,
    verify: str = "header",
    cache: bool = False,
    check_sizes: bool = True,
) -> FolderDataset:
    """Open ``split`` of the named dataset at ``root`` (preparing it first when it can)."""
    spec = DATASETS.get(dataset)
    root = Path(root)
    if not root.exists():
        if spec.prepare is None:
            raise DataError(
                f"{root}: {spec.description} not found; " + spec.missing_hint.format(root=root)
            )
        spec.prepare(root)
    ds = FolderDataset.open(
        root, split, transform, require_masks=require_masks, verify=verify, cache=cache
    )
    expected = (spec.classes or {}).get(split)
    if check_sizes and expected is not None and ds.num_classes != expected:
        raise DataError(
            f"{root}: {split} split has {ds.num_classes} classes, {spec.description} has "
            f"{expected} in the paper's split; {spec.missing_hint.format(root=root)} "
            "(or set data.check_sizes=false for a subset)"
        )
    return ds
