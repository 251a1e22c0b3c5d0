"""``MaskedImageFolder``: (image, mask, label) items from a folder, for your own training loop,
and ``paper_transforms``: the paper's paired train and eval transforms (its preprocessing).

Two layouts are read:

* a bgbias dataset folder (``ROOT/images/<class>/<image>`` or ``ROOT/index.csv``, masks in
  ``ROOT/masks``, optional ``ROOT/splits.json``; see :mod:`bgbias.data.layout`), or
* a plain class tree ``ROOT/<class>/<image>`` (torchvision's ImageFolder layout) with its masks
  in a mirrored folder ``masks=DIR``: ``DIR/<class>/<image stem>.png``, as ``bgbias masks ROOT
  DIR`` writes them.

A folder holding ``images/`` or ``index.csv`` is read as a bgbias dataset folder (the same rule
as ``bgbias audit``).
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ..errors import ConfigError, DataError, DataProblems, MissingMasksError
from .datasets import (
    MaskedImageDataset,
    Transform,
    attach_masks,
    select_split,
    verify_files,
)
from .layout import scan, scan_tree
from .transforms import RECIPES, Normalization, PairedTransform, Recipe

VERIFY = ("none", "header", "full")


class MaskedImageFolder(MaskedImageDataset):
    """A ``torch.utils.data.Dataset`` of ``(image, mask, label)``.

    ``transform=None``: the decoded RGB PIL image, its mode ``L`` PIL mask (same size) and the
    class index, as torchvision's ImageFolder gives images. Otherwise ``transform(image, mask)``
    is a paired transform (:class:`bgbias.PairedTransform`, e.g. from :func:`paper_transforms`)
    returning ``(image (3, H, W), mask (1, H, W) in [0, 1])``: one random crop/flip for both.

    ``masks``: None (a bgbias folder's ``ROOT/masks``; a plain tree must name its folder), a
    folder ``DIR`` mirroring the images (``DIR/<class>/<image stem>.png``), or False: no masks,
    every mask all ones ("everything is object"), for evaluation sets without masks.
    ``split``: a split of a bgbias folder's ``splits.json``; ``"all"`` (default) takes every
    class. ``verify``: "none", "header" (default: files readable, masks the size of their image)
    or "full" (decode every file), checked once here so a bad file fails now, not mid-epoch.

    ``labels`` (per sample, int64 numpy array) and ``classes`` (names, ``labels`` index them)
    are what pytorch-metric-learning's ``MPerClassSampler(dataset.labels, m=4, ...)`` needs.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        masks: str | os.PathLike | bool | None = None,
        transform: Transform | None = None,
        split: str = "all",
        verify: str = "header",
    ):
        if verify not in VERIFY:
            raise ConfigError(f"verify={verify!r}: expected one of {', '.join(VERIFY)}")
        if masks is True:
            masks = None  # True reads as "the default masks"
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: image folder not found")
        if (root / "images").is_dir() or (root / "index.csv").is_file():
            listing = scan(root)
            if masks not in (None, False):
                listing.masks_dir = Path(masks)
        else:
            if split != "all":
                raise DataError(
                    f"{root}: split={split!r} needs a bgbias dataset folder with splits.json "
                    "(ROOT/images/<class>/<image>); a plain class tree has no splits"
                )
            if masks is None:
                raise MissingMasksError(
                    f"{root}: a plain class tree needs masks=DIR (DIR/<class>/<image stem>.png, "
                    f"made by `bgbias masks {root} DIR` or bgbias.predict_masks), "
                    "or masks=False for all-ones masks"
                )
            listing = scan_tree(root, None if masks is False else masks)
        samples, classes, problems = select_split(listing, split, False, use_masks=False)
        if masks is not False:
            samples = self._with_masks(samples, listing.masks_dir, listing.images_dir)
        if verify != "none":
            problems += verify_files(samples, full=verify == "full")
        if problems:
            raise DataProblems(root, problems)
        if not samples:
            raise DataError(f"{root}: no images (JPEG, PNG, WebP, ...) in class folders")
        name = str(root) if split == "all" else f"{root}[{split}]"
        super().__init__(samples, classes, transform, name=name)

    @staticmethod
    def _with_masks(samples, masks_dir: Path, images_dir: Path):
        """Samples with their mask paths; missing masks fail with one line saying the fix."""
        fix = (
            f"make them with `bgbias masks {images_dir} {masks_dir}` (or bgbias.predict_masks), "
            "or pass masks=False for all-ones masks"
        )
        if not masks_dir.is_dir():
            raise MissingMasksError(f"{images_dir}: no mask folder {masks_dir}; {fix}")
        samples, missing = attach_masks(samples, masks_dir)
        if missing:
            raise MissingMasksError(
                f"{images_dir}: {len(missing)} of {len(samples)} images have no mask in "
                f"{masks_dir} (e.g. {missing[0].mask}); {fix}"
            )
        return samples

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name -> label, as torchvision's ImageFolder has it."""
        return {c: i for i, c in enumerate(self.classes)}

    def __getitem__(self, key: int | tuple[int, int]):
        """``(image, mask, label)``; ``dataset[i, seed]`` draws the transform's randomness from
        ``seed``. Without a transform: PIL RGB image, PIL L mask (255 everywhere without masks)."""
        if self.transform is not None:
            return super().__getitem__(key)
        index = key[0] if isinstance(key, tuple) else key
        image, mask = self.load(index)
        if mask is None:
            mask = Image.new("L", image.size, 255)
        return image, mask, int(self.labels[index])


def paper_transforms(
    recipe: str | Recipe = "imagenet",
    *,
    size: int | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
) -> tuple[PairedTransform, PairedTransform]:
    """The paper's paired ``(train, eval)`` transforms (its preprocessing) for ``recipe``.

    train: shorter side resized, RandomResizedCrop (scale (0.16, 1)) and horizontal flip, the
    same for image and mask; eval: shorter side resized, centre crop. Both give ``(image
    (3, size, size) normalised, mask (1, size, size) in [0, 1])``.

    ``recipe``: a name in ``bgbias.data.transforms.RECIPES`` ("imagenet": 256 -> 224, ImageNet
    mean/std; "bninception": the paper's 256 -> 227, Caffe BGR; each backbone's own) or a
    :class:`~bgbias.data.transforms.Recipe`. ``size``: another crop size (the resize keeps the
    recipe's resize/crop ratio). ``mean``/``std``: RGB statistics of images in [0, 1], as
    torchvision's ``Normalize`` takes them (kept in the recipe's channel order).
    """
    base = RECIPES.get(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(base, Recipe):
        raise ConfigError(f"recipe must be a name or a Recipe, got {type(recipe).__name__}")
    changes: dict = {}
    if size is not None:
        if size < 1:
            raise ConfigError(f"size={size}: must be a positive crop size")
        changes |= {"crop": size, "resize": round(size * base.resize / base.crop)}
    if mean is not None or std is not None:
        changes["normalization"] = _normalization(base.normalization, mean, std)
    final = base.with_overrides(**changes)
    return PairedTransform(final, train=True), PairedTransform(final, train=False)


def _normalization(
    base: Normalization,
    mean: tuple[float, float, float] | None,
    std: tuple[float, float, float] | None,
) -> Normalization:
    """``base`` with RGB [0, 1] ``mean``/``std`` turned into its 0-255, channel-ordered units."""

    def ordered(values, default):
        if values is None:
            return default
        if len(values) != 3 or (std is values and min(values) <= 0):
            raise ConfigError(f"mean/std must be 3 RGB values (std > 0), got {tuple(values)}")
        scaled = tuple(255.0 * float(v) for v in values)
        return scaled if base.channels == "RGB" else scaled[::-1]

    return Normalization(base.channels, ordered(mean, base.mean), ordered(std, base.std))
