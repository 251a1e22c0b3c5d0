"""Datasets by name: one :class:`DatasetSpec` per dataset, each in its own module of
:mod:`bgbias.data.catalog` (what it is, how it is distributed, the paper's splits, and the
settings the paper trains it with), and :func:`open_split` to read one split of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..registry import Registry
from .datasets import FolderDataset, Transform

Entries = list[tuple[str, str]]  # (path relative to ROOT/images, class name)
Splits = dict[str, list[str]]


@dataclass(frozen=True)
class Layout:
    """One way a dataset is distributed. ``marker``: a path that identifies the layout, found
    up to three folders deep in what the user passed; ``read(base, images_dir)`` gets the folder
    holding the marker and returns every image with its class, and the class split."""

    name: str
    marker: str
    read: Callable[[Path, Path], tuple[Entries, Splits]]
    expected: str  # the files a user should pass, in words


@dataclass(frozen=True)
class DatasetSpec:
    """Everything bgbias knows about one dataset.

    ``classes``: the paper's class count per split, checked when a split is opened;
    ``layouts``: the official distributions ``bgbias data import`` reads. How to train on it
    lives apart, in :mod:`bgbias.presets`.
    """

    name: str
    description: str
    classes: dict[str, int] | None = None
    layouts: tuple[Layout, ...] = ()
    missing_hint: str = "bring it into the generic folder layout (see `bgbias data check --help`)"


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name, spec)


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
    """Open ``split`` of the named dataset at ``root``; nothing is created on demand."""
    spec = DATASETS.get(dataset)
    root = Path(root)
    if not root.exists():
        raise DataError(
            f"{root}: {spec.description} not found; " + spec.missing_hint.format(root=root)
        )
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


from . import catalog  # noqa: E402, F401  (registers the datasets)
