"""Suspect masks: the failure shapes of automatic foreground masks, found without hand labels.

A mask model fails quietly on hard photos (a camouflaged bird: the tree trunk, only the head, or
nothing), and an audit or a BGAugment run then blames the model for the mask's mistake. These
checks flag the shapes such failures take, so a user can look at them (a JSON list and a contact
sheet) before trusting what follows:

- ``empty``: almost no foreground (the model found nothing);
- ``full``: almost all foreground (the background was not separated);
- ``border``: the foreground covers most of the image border (it took the scene, not an object);
- ``fragmented``: many separate parts of real size (a product photo shows one object);
- ``flip``: the mask of the mirrored photo, mirrored back, disagrees (an unstable prediction).

Masks are binarised at ``THRESHOLD`` (128), the one threshold of every mask measure in bgbias.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ..decoding import MASK_HALF, decode_image, load_mask
from ..errors import DataError
from ..io import save_image, write_json

THRESHOLD = MASK_HALF  # foreground = mask value >= 128 (of 0-255), as the mask rules read it


@dataclass(frozen=True)
class SanityLimits:
    """When a mask is suspect. Fractions are of the image's pixels (``empty``, ``full``, a part's
    ``min_part``) or of its border pixels (``border``)."""

    empty: float = 0.01  # foreground below 1% of the image
    full: float = 0.95  # foreground above 95%
    border: float = 0.5  # foreground on more than half of the border ring
    parts: int = 4  # more than 4 parts ...
    min_part: float = 0.005  # ... each at least 0.5% of the image (specks do not count)
    flip_iou: float = 0.8  # IoU with the mirrored photo's mask below 0.8


@dataclass(frozen=True)
class SuspectMask:
    """One flagged mask: ``problems`` as ``"code: detail"`` lines (codes: the module's list)."""

    image: str
    mask: str
    problems: tuple[str, ...]


def binary(mask: np.ndarray | Image.Image) -> np.ndarray:
    """(H, W) bool foreground of a 0-255 mask (binarised at ``THRESHOLD``)."""
    return np.asarray(mask) >= THRESHOLD


def mask_problems(
    mask: np.ndarray | Image.Image,
    limits: SanityLimits = SanityLimits(),
    mirrored: np.ndarray | Image.Image | None = None,
) -> list[str]:
    """The problems of one (H, W) 0-255 mask, as ``"code: detail"``; ``mirrored`` is the mask
    predicted for the horizontally flipped photo (not flipped back), when it was made."""
    fg = binary(mask)
    if fg.ndim != 2 or fg.size == 0:
        raise ValueError(f"a mask is (H, W), got shape {fg.shape}")
    problems = []
    area = float(fg.mean())
    if area < limits.empty:
        problems.append(f"empty: {100 * area:.1f}% foreground")
    elif area > limits.full:
        problems.append(f"full: {100 * area:.1f}% foreground")
    ring = np.concatenate([fg[0], fg[-1], fg[1:-1, 0], fg[1:-1, -1]])
    on_border = float(ring.mean())
    if area <= limits.full and on_border > limits.border:
        problems.append(f"border: foreground on {100 * on_border:.0f}% of the border")
    _, _, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    parts = int((stats[1:, cv2.CC_STAT_AREA] >= limits.min_part * fg.size).sum())
    if parts > limits.parts:
        problems.append(f"fragmented: {parts} separate parts")
    if mirrored is not None:
        back = binary(mirrored)[:, ::-1]
        union = np.logical_or(fg, back).sum()
        iou = float(np.logical_and(fg, back).sum() / union) if union else 1.0
        if iou < limits.flip_iou:
            problems.append(f"flip: IoU {iou:.2f} with the mirrored photo's mask")
    return problems


def check_masks(
    pairs: Sequence[tuple[str, Path]],
    limits: SanityLimits = SanityLimits(),
    workers: int = 8,
    unreadable: list[str] | None = None,
) -> list[SuspectMask]:
    """The suspect masks among ``pairs`` of (image id, mask file). An unreadable mask raises,
    or with an ``unreadable`` list is skipped and its problem appended there."""

    def one(pair: tuple[str, Path]) -> SuspectMask | str | None:
        image, path = pair
        try:
            problems = mask_problems(load_mask(path), limits)
        except DataError as exc:
            if unreadable is None:
                raise
            return str(exc)
        return SuspectMask(image, str(path), tuple(problems)) if problems else None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(pool.map(one, pairs))
    if unreadable is not None:
        unreadable.extend(f for f in found if isinstance(f, str))
    return [f for f in found if isinstance(f, SuspectMask)]


def write_suspects(
    out: str | os.PathLike,
    suspects: Sequence[SuspectMask],
    images: dict[str, Path],
    limits: SanityLimits = SanityLimits(),
    checked: int | None = None,
    name: str = "masks-suspects",
) -> tuple[Path, Path | None]:
    """``OUT/<name>.json`` (every suspect mask, the limits) and, when there are any, a contact
    sheet ``OUT/<name>.png`` (each photo beside its mask overlay); returns both paths."""
    out = Path(out)
    json_path, sheet_path = out / f"{name}.json", out / f"{name}.png"
    write_json(
        json_path,
        {
            "checked": checked,
            "suspect": len(suspects),
            "limits": asdict(limits),
            "masks": [asdict(s) | {"problems": list(s.problems)} for s in suspects],
        },
    )
    if not suspects:
        sheet_path.unlink(missing_ok=True)  # an earlier run's sheet would show fixed masks
        return json_path, None
    save_image(contact_sheet(suspects, images), sheet_path)
    return json_path, sheet_path


TILE = 160  # pixels per photo in the contact sheet
SHEET_LIMIT = 60  # suspects drawn; the JSON lists them all


def overlay(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The photo with its background darkened and tinted blue, the foreground as it is: what a
    BGAugment model keeps of it."""
    rgb = image.convert("RGB")
    shade = Image.blend(rgb, Image.new("RGB", rgb.size, (20, 40, 140)), 0.7)
    return Image.composite(rgb, shade, mask.resize(rgb.size).point(lambda v: 255 * (v >= 128)))


def contact_sheet(suspects: Sequence[SuspectMask], images: dict[str, Path]) -> Image.Image:
    """Rows of (photo, mask overlay, its problems) for the first ``SHEET_LIMIT`` suspects."""
    shown = list(suspects)[:SHEET_LIMIT]
    caption = 44
    sheet = Image.new("RGB", (2 * TILE + 8, len(shown) * (TILE + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, suspect in enumerate(shown):
        top = row * (TILE + caption)
        try:
            photo = decode_image(images[suspect.image]).pixels
            mask = load_mask(suspect.mask)
        except (DataError, KeyError) as exc:
            draw.text((4, top + 4), f"{suspect.image}: {exc}"[:60], fill="black")
            continue
        for column, tile in enumerate((photo, overlay(photo, mask))):
            tile = tile.copy()
            tile.thumbnail((TILE, TILE))
            sheet.paste(tile, (column * (TILE + 8), top))
        draw.text((4, top + TILE + 2), suspect.image[-44:], fill="black")
        draw.text((4, top + TILE + 16), "; ".join(suspect.problems)[:52], fill=(160, 0, 0))
    return sheet
