"""Datasets of (image, mask, label) with class-disjoint splits, on one common base.

Every dataset bgbias reads is a :class:`FolderDataset`: a folder in the layout
:mod:`bgbias.data.layout` describes and lists, one split of it.

The official Cars196 / CUB-200-2011 / SOP files are brought into this layout by
``bgbias data import``; the generated benchmark is written in it directly.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..decoding import (
    DecodedImage,
    decode_image,
    load_mask,
    mask_content_problem,
    mask_mode_problem,
    mask_size_problem,
    read_header,
)
from ..errors import DataError, DataProblems, MissingMasksError
from .layout import Listing, mask_file, scan

# (image, mask[, generator]) -> (image (3, H, W), mask (1, H, W)). A transform with a
# ``source_side`` attribute (PairedTransform) is given images as DecodedImage, which JPEGs may
# be decoded at reduced resolution for (down to that shorter side).
Transform = Callable[[Image.Image, "Image.Image | None"], tuple[torch.Tensor, torch.Tensor]]
MASKS_HINT = "make them with `bgbias masks {root}/images {root}/masks`"


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path | None
    label: int
    class_name: str
    id: str = ""  # the image's path relative to ROOT/images: stable across runs and machines


class MaskedImageDataset(Dataset):
    """Items are ``(image, mask, label)``: the transform's image tensor (3, H, W), the mask
    (1, H, W) in [0, 1] aligned with it, and the class index within this split."""

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        transform: Transform | None = None,
        name: str = "dataset",
        cache: bool = False,
    ):
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform
        self.name = name
        counts = Counter(s.label for s in self.samples)
        empty = [c for i, c in enumerate(self.classes) if counts[i] == 0]
        if empty:
            raise DataError(f"{name}: class(es) without images: {', '.join(empty[:10])}")
        self.labels = np.array([s.label for s in self.samples], dtype=np.int64)
        self._cache: dict[int, tuple[DecodedImage, Image.Image | None]] | None = (
            {} if cache else None
        )

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_masks(self) -> bool:
        return all(s.mask is not None for s in self.samples)

    def load(self, index: int) -> tuple[Image.Image, Image.Image | None]:
        """The decoded image (RGB) and mask (L) of one sample, before any transform."""
        image, mask = self._decode(index)
        return image.pixels, mask

    def _decode(
        self, index: int, min_side: int | None = None
    ) -> tuple[DecodedImage, Image.Image | None]:
        """(DecodedImage, mask); cached at full resolution when caching, else JPEGs reduced
        down to ``min_side`` (the image and its mask are aligned by the image's full size)."""
        if self._cache is not None:
            if index not in self._cache:
                self._cache[index] = _decode_sample(self.samples[index], None)
            return self._cache[index]
        return _decode_sample(self.samples[index], min_side)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``dataset[i]``, or ``dataset[i, seed]``: the transform's randomness from that seed."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        if self.transform is None:
            raise DataError(f"{self.name}: no transform set (pass transform=PairedTransform(...))")
        min_side = getattr(self.transform, "source_side", None)
        image, mask = self._decode(index, min_side)
        if min_side is None:
            image = image.pixels
        if seed is None:
            x, m = self.transform(image, mask)
        else:
            x, m = self.transform(image, mask, torch.Generator().manual_seed(seed))
        return x, m, int(self.labels[index])

    def with_transform(self, transform: Transform | None) -> MaskedImageDataset:
        """The same samples (and decoded-image cache) under another transform."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.transform = transform
        return clone


def _decode_sample(sample: Sample, min_side: int | None) -> tuple[DecodedImage, Image.Image | None]:
    image = decode_image(sample.image, min_side)
    if sample.mask is None:
        return image, None
    return image, load_mask(sample.mask, image.size, image.orientation)


class IndexedDataset(Dataset):
    """Adds the item's index: ``(image, mask, label, index)`` (fixed per-item background draws)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], index)


def verify_files(
    samples: Sequence[Sample], full: bool, workers: int = 8, content: bool = False
) -> list[str]:
    """Problems with the files of ``samples``: unreadable files, masks of a rejected mode or
    another size than their image's; with ``full`` (every file decoded) also corrupt/truncated
    files, masks with coloured pixels and 16-bit values out of range (``bgbias.decoding``), and
    with ``content`` too masks that are empty or full (``bgbias data check``)."""

    def check(sample: Sample) -> str | None:
        try:
            if full:
                _, mask = _decode_sample(sample, None)
                problem = mask_content_problem(mask) if content and mask is not None else None
                return f"{sample.mask}: {problem}" if problem else None
            image = read_header(sample.image)
            if sample.mask is None:
                return None
            mask = read_header(sample.mask, "mask")
            problem = mask_mode_problem(mask.mode)
            if problem:
                return f"{sample.mask}: {problem}"
            # a mask of the image's stored size is turned with it (see bgbias.decoding)
            if mask.size not in (image.size, image.stored_size):
                return mask_size_problem(sample.mask, mask.size, image.size)
        except DataError as exc:
            return str(exc)
        return None

    if len(samples) < 64:
        results = [check(s) for s in samples]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(check, samples, chunksize=64))
    return [r for r in results if r is not None]


class FolderDataset(MaskedImageDataset):
    """A dataset root in the generic layout (see module docstring), one split of it."""

    @classmethod
    def open(
        cls,
        root: str | os.PathLike,
        split: str = "train",
        transform: Transform | None = None,
        require_masks: bool = False,
        verify: str = "header",
        cache: bool = False,
    ) -> FolderDataset:
        """Open one split; every problem found raises at once as :class:`DataProblems`.

        ``verify``: ``"none"`` (paths only), ``"header"`` (file headers: readable, mask size
        matches image size) or ``"full"`` (decode every file: catches truncated images).
        ``split="all"`` takes every class, with or without a split file.
        """
        if verify not in ("none", "header", "full"):
            raise ValueError(f"verify must be 'none', 'header' or 'full', got {verify!r}")
        listing = scan(root)
        samples, classes, problems = select_split(listing, split, require_masks)
        if verify != "none":
            problems += verify_files(samples, full=verify == "full")
        if problems:
            raise DataProblems(listing.root, problems)
        return cls(samples, classes, transform, name=f"{listing.root}[{split}]", cache=cache)


def select_split(
    listing: Listing, split: str, require_masks: bool, use_masks: bool = True
) -> tuple[list[Sample], list[str], list[str]]:
    """Samples and class order of ``split`` (labels follow the split file's class order);
    without ``use_masks`` every sample's mask is None and mask files are not looked for."""
    problems = list(listing.problems)
    root = listing.root
    if split == "all":
        classes = list(listing.classes)
    elif listing.splits is None:
        raise DataError(
            f"{root}: no splits.json; split {split!r} is undefined "
            f"(write one with `bgbias data split {root}` or use split='all')"
        )
    elif split not in listing.splits:
        raise DataError(
            f"{root}/splits.json: no split {split!r} (has: {', '.join(listing.splits)})"
        )
    else:
        classes = list(listing.splits[split])
    label_of = {c: i for i, c in enumerate(classes)}
    has_masks = use_masks and listing.masks_dir.is_dir()
    if require_masks and not has_masks:
        raise MissingMasksError(
            f"{root}: no masks folder {listing.masks_dir}; " + MASKS_HINT.format(root=root)
        )
    samples = [
        Sample(listing.images_dir / relative, None, label_of[class_name], class_name, relative)
        for relative, class_name in listing.images
        if class_name in label_of
    ]
    if has_masks:
        samples, missing = attach_masks(samples, listing.masks_dir)
        problems += [f"{s.image}: mask missing (expected {s.mask})" for s in missing]
    return samples, classes, problems


def attach_masks(samples: Sequence[Sample], masks_dir: Path) -> tuple[list[Sample], list[Sample]]:
    """``samples`` with their masks under ``masks_dir`` (the :func:`mask_file` rule), and
    those of them whose mask file does not exist."""
    attached = [replace(s, mask=mask_file(masks_dir, s.id)) for s in samples]
    return attached, [s for s in attached if not s.mask.is_file()]
