"""Datasets by name: one :class:`DatasetSpec` per dataset, each in its own module of
:mod:`bgbias.data.catalog` (what it is, how it is distributed, the paper's splits, and the
settings the paper trains it with), and :func:`open_split` to read one split of it.

The catalog registers itself on the first lookup (a provider of :data:`DATASETS`): it imports
this module, never the other way round."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..registry import Registry
from .dataset_spec import DatasetSpec
from .datasets import FolderDataset, Transform

DATASETS: Registry[DatasetSpec] = Registry("dataset", providers=("bgbias.data.catalog",))


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
