"""The audited images: found in any folder layout, masks found or made, decoded once.

Layouts: the bgbias layout (``ROOT/images/<class>/...`` or ``ROOT/index.csv``, masks in
``ROOT/masks``, classes of a ``--split``), a plain class tree (``ROOT/<class>/<image>``), or a flat
folder (images directly in ROOT: no labels). Masks come from ``masks`` (the same relative paths,
``<stem><mask_suffix>.png``), from the bgbias layout's own folder, or are made by a mask model
(resumable, cached in ``cache``). Each image is decoded once and centre-cropped for every
preprocessing geometry the audited models need; ``only_bg``'s inpainted backgrounds are made
then, once per image, on the CPU (OpenCV works on uint8 images).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.datasets import select_split
from ..data.layout import scan
from ..data.mask_sanity import mask_problems
from ..data.transforms import center_view
from ..decoding import load_image, load_mask
from ..errors import BgbiasError, DataError, DataProblems, MissingMasksError
from ..io import image_files

log = logging.getLogger(__name__)
INPAINT_RADIUS = 5  # px at the model's input size: OpenCV's Telea neighbourhood
OBJECT_DILATION = 2  # px grown around the mask so a soft edge leaves no object colour behind


@dataclass(frozen=True)
class AuditImage:
    id: str  # path relative to the image root: stable across runs
    image: Path
    mask: Path | None
    class_name: str | None = None


@dataclass
class ImageSet:
    """What an audit runs on; ``classes`` is None for a folder without labels."""

    root: Path
    layout: str
    items: list[AuditImage]
    classes: list[str] | None = None
    masks: str = ""  # where the masks come from, in words

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray | None:
        if self.classes is None:
            return None
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[item.class_name] for item in self.items], dtype=np.int64)

    def describe(self) -> dict:
        counts = Counter(item.class_name for item in self.items) if self.classes else None
        return {
            "root": str(self.root.resolve()),
            "layout": self.layout,
            "images": len(self.items),
            "classes": len(self.classes) if self.classes is not None else None,
            "images_per_class": (
                {"min": min(counts.values()), "max": max(counts.values())} if counts else None
            ),
            "masks": self.masks,
        }


def find_images(
    root: str | os.PathLike,
    split: str | None = None,
    masks: str | os.PathLike | None = None,
    image_suffix: str = "",
    mask_suffix: str = "",
) -> ImageSet:
    """The images under ``root`` with their classes and mask paths (masks may be None yet).

    ``split``: a split of a bgbias-layout folder's splits.json (default: every image);
    ``image_suffix``: audit only images whose name (without extension) ends with it, e.g.
    ``_image`` for ``12_image.jpg``; ``mask_suffix`` replaces it in mask names (``12_mask.png``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    if (root / "images").is_dir() or (root / "index.csv").is_file():
        listing = scan(root)
        samples, classes, _ = select_split(listing, split or "all", require_masks=False)
        if listing.problems:
            raise DataProblems(root, listing.problems)
        items = [AuditImage(s.id, s.image, None, s.class_name) for s in samples]
        layout, default_masks = "bgbias", listing.masks_dir
    else:
        if split is not None:
            raise DataError(
                f"{root}: --split {split} needs a bgbias-layout folder with splits.json"
            )
        default_masks = None
        loops: list[str] = []
        files = image_files(root, loops)
        if loops:
            raise DataProblems(root, loops)
        if any(p.parent == root for p in files):  # images directly in ROOT: no classes
            layout, classes = "flat", None
            items = [AuditImage(str(p.relative_to(root)), p, None) for p in files]
        else:
            layout = "class folders"
            items = [
                AuditImage(str(p.relative_to(root)), p, None, p.relative_to(root).parts[0])
                for p in files
            ]
            classes = sorted({item.class_name for item in items})
    if image_suffix:
        items = [i for i in items if Path(i.id).stem.endswith(image_suffix)]
    if masks is not None and not Path(masks).is_dir():
        raise DataError(f"{masks}: mask folder not found")
    mask_root = Path(masks) if masks is not None else default_masks
    if mask_root is not None:
        items = [_with_mask(i, mask_root, image_suffix, mask_suffix) for i in items]
        mask_files = {i.mask.resolve() for i in items if i.mask is not None}
        items = [i for i in items if i.image.resolve() not in mask_files]  # masks beside images
    if not items:
        which = f" whose name ends with {image_suffix!r}" if image_suffix else ""
        raise DataError(f"{root}: no images{which} (JPEG, PNG, WebP, ...) to audit")
    if classes is not None:
        present = {i.class_name for i in items}
        classes = [c for c in classes if c in present]
    found = sum(i.mask is not None for i in items)
    source = f"{mask_root} ({found} of {len(items)} found)" if mask_root is not None else "none"
    return ImageSet(root, layout, items, classes, source)


def _with_mask(item: AuditImage, mask_root: Path, image_suffix: str, mask_suffix: str):
    relative = Path(item.id)
    stem = (
        relative.stem[: len(relative.stem) - len(image_suffix)] if image_suffix else relative.stem
    )
    path = mask_root / relative.parent / f"{stem}{mask_suffix}.png"
    return AuditImage(item.id, item.image, path if path.is_file() else None, item.class_name)


def check_masks(
    images: ImageSet, mask_model: str | None, cache: Path
) -> tuple[list[AuditImage], list[AuditImage]]:
    """The images without a mask, and those of them whose mask is in ``cache`` already. Missing
    masks that no mask model will make are an error naming the ways out (nothing is written)."""
    missing = [i for i in images.items if i.mask is None]
    cached = [i for i in missing if (cache / Path(i.id).with_suffix(".png")).is_file()]
    if missing and len(cached) < len(missing) and mask_model is None:
        example = missing[0].image
        raise MissingMasksError(
            f"{images.root}: {len(missing)} of {len(images)} images have no mask (e.g. {example}); "
            "pass --masks DIR (with --mask-suffix if mask names differ) or --mask-model u2net"
        )
    return missing, cached


def make_missing_masks(
    images: ImageSet, mask_model: str | None, cache: Path, device: str = "cpu"
) -> ImageSet:
    """Masks for the images without one, made by ``mask_model`` into ``cache`` (mirroring the
    image ids, as `bgbias masks` writes them; masks already there are reused, so a killed run
    resumes). Without a mask model, missing masks are an error naming the ways out."""
    missing, cached = check_masks(images, mask_model, cache)
    if len(cached) < len(missing):
        from ..masks.generate import generate_masks

        inputs = cache / ".inputs"  # links to exactly the images that need a mask
        for item in missing:
            link = inputs / item.id
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(item.image.resolve())
        report = generate_masks(inputs, cache, model=mask_model, device=device)
        if report.failed:
            raise DataProblems(images.root, [f["error"] for f in report.failed])
    items = [
        AuditImage(i.id, i.image, cache / Path(i.id).with_suffix(".png"), i.class_name)
        if i.mask is None
        else i
        for i in images.items
    ]
    source = images.masks
    if missing:
        made = f"made by {mask_model}" if len(cached) < len(missing) else "made earlier"
        source += f"; {len(missing)} {made} in {cache}"
    return ImageSet(images.root, images.layout, items, images.classes, source)


@dataclass
class Pixels:
    """The images at one preprocessing geometry (resize shorter side, centre crop), uint8 on
    the CPU: ``images`` (N, 3, C, C), ``masks`` (N, 1, C, C) 0-255, ``backgrounds`` (N, 3, C, C)
    the images with their object inpainted away (``only_bg``); ``problems``: per image, its
    full-size mask's :func:`~bgbias.data.mask_sanity.mask_problems` (empty when not checked)."""

    resize: int
    crop: int
    images: torch.Tensor
    masks: torch.Tensor
    backgrounds: torch.Tensor = field(default=None)
    problems: list[list[str]] = field(default_factory=list)

    def subset(self, keep: list[int]) -> Pixels:
        """These pixels of the images ``keep`` only (in that order)."""
        index = torch.tensor(keep, dtype=torch.long)
        return Pixels(
            self.resize,
            self.crop,
            self.images[index],
            self.masks[index],
            None if self.backgrounds is None else self.backgrounds[index],
            [self.problems[i] for i in keep] if self.problems else [],
        )

    @property
    def mask_area(self) -> np.ndarray:
        """(N,) fraction of each image the object covers."""
        return self.masks.float().div(255.0).mean(dim=(1, 2, 3)).numpy()


def _crop(image: Image.Image, resize: int, crop: int) -> np.ndarray:
    return np.asarray(center_view(image, resize, crop))


def decode(
    images: ImageSet, geometries: Iterable[tuple[int, int]], workers: int = 4
) -> dict[tuple[int, int], Pixels]:
    """Decode every image and mask once; crop it for each (resize, crop) geometry and check the
    full-size mask (:func:`mask_problems`). Unreadable files and masks whose size differs from
    their image's are reported together."""
    geometries = sorted(set(geometries))

    def one(item: AuditImage):
        try:
            image = load_image(item.image)
            mask = load_mask(item.mask, image.size)
        except DataError as exc:
            return str(exc)
        crops = [(_crop(image, r, c), _crop(mask, r, c)) for r, c in geometries]
        return crops, mask_problems(mask)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(one, images.items))
    problems = [d for d in decoded if isinstance(d, str)]
    if problems:
        raise DataProblems(images.root, problems)
    out = {}
    problems = [d[1] for d in decoded]
    for g, (resize, crop) in enumerate(geometries):
        rgb = torch.from_numpy(np.stack([d[0][g][0] for d in decoded])).permute(0, 3, 1, 2)
        masks = torch.from_numpy(np.stack([d[0][g][1] for d in decoded]))[:, None]
        out[(resize, crop)] = Pixels(
            resize, crop, rgb.contiguous(), masks.contiguous(), None, problems
        )
    return out


def inpaint_objects(pixels: Pixels, workers: int = 4) -> torch.Tensor:
    """(N, 3, C, C) uint8: each image with every pixel its mask touches (grown by
    ``OBJECT_DILATION``) filled by OpenCV's Telea inpainting from the surrounding background."""
    try:
        import cv2
    except ImportError:
        raise BgbiasError(
            "the only_bg condition inpaints with OpenCV: `pip install opencv-python-headless`"
        ) from None
    kernel = np.ones((2 * OBJECT_DILATION + 1,) * 2, np.uint8)

    def one(i: int) -> np.ndarray:
        rgb = np.ascontiguousarray(pixels.images[i].permute(1, 2, 0).numpy())
        region = cv2.dilate((pixels.masks[i, 0].numpy() > 0).astype(np.uint8), kernel)
        return cv2.inpaint(rgb, region, INPAINT_RADIUS, cv2.INPAINT_TELEA)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # OpenCV releases the GIL
        filled = list(pool.map(one, range(len(pixels.images))))
    return torch.from_numpy(np.stack(filled)).permute(0, 3, 1, 2).contiguous()
