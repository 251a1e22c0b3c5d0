"""`bgbias data check`: every problem of a dataset root at once, plus its split sizes."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import DataError
from .datasets import select_split, verify_files
from .layout import scan
from .mask_sanity import check_masks, write_suspects


@dataclass
class DatasetReport:
    root: str
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> classes, images
    images: int = 0
    missing_masks: int = 0
    has_masks_folder: bool = False
    unassigned_classes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # masks of suspect shape (bgbias.data.mask_sanity): not errors, but worth a look
    suspect_masks: list[dict] = field(default_factory=list)
    suspects_file: str | None = None
    suspects_sheet: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}

    def format(self) -> str:
        lines = [f"dataset {self.root}", f"{'split':<8}{'classes':>9}{'images':>9}"]
        for split, sizes in self.splits.items():
            lines.append(f"{split:<8}{sizes['classes']:>9}{sizes['images']:>9}")
        if self.has_masks_folder:
            lines.append(f"masks: {self.images - self.missing_masks} of {self.images} images")
        else:
            lines.append(
                "masks: none (no masks/ folder; BGAugment and the corrupted test need them)"
            )
        if self.unassigned_classes:
            lines.append(
                f"{len(self.unassigned_classes)} class(es) in no split (unused), e.g. "
                f"{self.unassigned_classes[0]!r}"
            )
        if self.suspect_masks:
            lines.append(
                f"{len(self.suspect_masks)} suspect mask(s) (look at {self.suspects_sheet}; "
                f"all in {self.suspects_file}):"
            )
            lines.extend(
                f"  - {s['image']}: {'; '.join(s['problems'])}" for s in self.suspect_masks[:20]
            )
            if len(self.suspect_masks) > 20:
                lines.append(f"  ... and {len(self.suspect_masks) - 20} more")
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines.extend(f"  - {p}" for p in self.problems)
        else:
            lines.append(
                "no problems found"
                + (", but check the suspect masks" if self.suspect_masks else "")
            )
        return "\n".join(lines)


def check_dataset(
    root: str | os.PathLike, verify: str = "full", out: str | os.PathLike | None = None
) -> DatasetReport:
    """Scan ``root`` and report all problems instead of raising at the first one.

    ``verify="full"`` decodes every image and mask (finds truncated files, coloured RGB or
    palette masks, 16-bit values out of range, empty and full masks); ``"header"`` only reads
    file headers (sizes, EXIF orientation, mask modes), which is much faster on large datasets.
    The mask rules are in :mod:`bgbias.decoding`. With ``"full"``, masks of suspect shape as
    well (nearly empty or full, border-hugging, fragmented; :mod:`bgbias.data.mask_sanity`):
    not errors, but listed in ``OUT/masks-suspects.json`` and drawn in a contact sheet
    ``OUT/masks-suspects.png`` (``out`` defaults to the masks folder).
    """
    listing = scan(root)
    report = DatasetReport(str(Path(root)), has_masks_folder=listing.masks_dir.is_dir())
    report.problems.extend(listing.problems)
    splits = list(listing.splits) if listing.splits is not None else ["all"]
    if listing.splits is None:
        report.problems.append(
            f"{listing.root}: no splits.json (train/val/test undefined; "
            f"write one with `bgbias data split {listing.root}`)"
        )
    assigned = set()
    masked: dict[str, tuple] = {}  # image id -> (image file, mask file), for the mask checks
    for split in splits:
        try:
            samples, classes, problems = select_split(listing, split, require_masks=False)
        except DataError as exc:
            report.problems.append(str(exc))
            continue
        assigned.update(classes)
        # listing-level problems are already reported once above
        report.problems.extend(p for p in problems if p not in listing.problems)
        present = {s.class_name for s in samples}
        report.splits[split] = {"classes": len(present), "images": len(samples)}
        report.images += len(samples)
        report.missing_masks += (
            sum(1 for s in samples if s.mask is not None and not s.mask.is_file())
            if report.has_masks_folder
            else 0
        )
        if verify != "none":
            # an image whose mask is missing is still checked itself
            existing = [
                s if s.mask is None or s.mask.is_file() else dataclasses.replace(s, mask=None)
                for s in samples
            ]
            full = verify == "full"
            report.problems.extend(verify_files(existing, full=full, content=full))
            masked.update((s.id, (s.image, s.mask)) for s in existing if s.mask is not None)
    if listing.splits is not None:
        report.unassigned_classes = [c for c in listing.classes if c not in assigned]
    if verify == "full" and masked:
        _check_mask_shapes(report, masked, Path(out) if out else listing.masks_dir)
    return report


def _check_mask_shapes(report: DatasetReport, masked: dict[str, tuple], out: Path) -> None:
    pairs = [(key, mask) for key, (_, mask) in sorted(masked.items())]
    suspects = check_masks(pairs, unreadable=[])  # unreadable ones: problems reported already
    report.suspect_masks = [{"image": s.image, "problems": list(s.problems)} for s in suspects]
    images = {key: image for key, (image, _) in masked.items()}
    json_file, sheet = write_suspects(out, suspects, images, checked=len(pairs))
    report.suspects_file = str(json_file)
    report.suspects_sheet = str(sheet) if sheet else None
