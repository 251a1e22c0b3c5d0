"""What bgbias knows about a dataset (:class:`DatasetSpec`) and how one is distributed
(:class:`Layout`): plain types, apart from the registry, so that the catalog modules that
describe the datasets import them without importing the registry that lists them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
