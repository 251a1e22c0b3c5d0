"""Background banks: photos (or procedural textures) decoded once into one uint8 tensor.

BGAugment draws its backgrounds from the ``val`` bank, the corrupted test from the disjoint
``test`` bank (PAPER.md section 4). A bank is stored as an *atlas*: all backgrounds packed into
one image, each with its edges replicated into a small border, so a whole batch of random crops
is one ``grid_sample`` call (see :mod:`bgbias.augment`).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..decoding import decode_image
from ..errors import ConfigError, DataError, DataProblems
from ..io import image_files, sha256_file
from .background_sets import BACKGROUND_SETS, resolve_source
from .pixels import resize_shorter
from .procedural import texture

BORDER = 2  # replicated pixels around each tile: bilinear taps at a crop's edge stay in its image
BANK_SPLITS = ("val", "test")


class BackgroundBank:
    """N backgrounds of shorter side ``short_side``, packed into one uint8 atlas.

    ``pixels``: uint8 (3, AH, AW); background i is ``pixels[:, y:y+h, x:x+w]`` with
    (y, x) = ``origins[i]`` and (h, w) = ``sizes[i]``, surrounded by ``BORDER`` replicated pixels.
    """

    def __init__(
        self,
        pixels: torch.Tensor,
        origins: torch.Tensor,
        sizes: torch.Tensor,
        names: list[str],
        source: str,
    ):
        if pixels.dtype != torch.uint8 or pixels.dim() != 3 or pixels.shape[0] != 3:
            raise ValueError("pixels must be uint8 of shape (3, AH, AW)")
        if len(names) == 0:
            raise DataError(f"{source}: background bank is empty")
        self.pixels = pixels
        self.origins = origins
        self.sizes = sizes
        self.names = names
        self.source = source

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"BackgroundBank({self.source!r}, n={len(self)})"

    @classmethod
    def from_arrays(cls, images: list[np.ndarray], names: list[str], source: str) -> BackgroundBank:
        """From uint8 (h, w, 3) arrays, already resized; packed on shelves, tallest first."""
        if not images:
            raise DataError(f"{source}: background bank is empty")
        padded = [(a.shape[0] + 2 * BORDER, a.shape[1] + 2 * BORDER) for a in images]
        area = sum(h * w for h, w in padded)
        shelf_width = max(max(w for _, w in padded), math.ceil(math.sqrt(area)))
        origins = [(0, 0)] * len(images)
        y = x = shelf_height = 0
        for i in sorted(range(len(images)), key=lambda k: -padded[k][0]):
            h, w = padded[i]
            if x + w > shelf_width:
                y, x, shelf_height = y + shelf_height, 0, 0
            origins[i] = (y + BORDER, x + BORDER)
            x += w
            shelf_height = max(shelf_height, h)
        pixels = torch.zeros(3, y + shelf_height, shelf_width, dtype=torch.uint8)
        for (oy, ox), array in zip(origins, images, strict=True):
            # replicated border padded in uint8 and in channel-first order, so the copy into
            # the atlas is contiguous (no float round trip per tile)
            chw = np.asarray(array, dtype=np.uint8).transpose(2, 0, 1)
            tile = np.pad(chw, ((0, 0), (BORDER, BORDER), (BORDER, BORDER)), mode="edge")
            pixels[
                :,
                oy - BORDER : oy - BORDER + tile.shape[1],
                ox - BORDER : ox - BORDER + tile.shape[2],
            ] = torch.from_numpy(tile)
        sizes = torch.tensor([a.shape[:2] for a in images], dtype=torch.long)
        return cls(pixels, torch.tensor(origins, dtype=torch.long), sizes, names, source)

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike, short_side: int, workers: int = 8
    ) -> BackgroundBank:
        """Every JPEG/PNG/WebP/... photo in ``folder`` (recursively), shorter side resized to
        ``short_side``. An empty folder or an unreadable file raises, naming the file.

        JPEGs are decoded at reduced resolution where they are at least twice ``short_side``
        (the paper's 1000x1333 photos: a quarter of the pixels for a 256 bank).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: background folder not found")
        loops: list[str] = []
        files = image_files(folder, loops)
        if loops:
            raise DataProblems(folder, loops)
        if not files:
            raise DataError(f"{folder}: background folder has no images (JPEG, PNG, WebP, ...)")
        decoded = _decode_all(files, short_side, workers, folder)
        return cls.from_arrays(decoded, [str(p.relative_to(folder)) for p in files], str(folder))

    @classmethod
    def from_images(
        cls,
        images: Sequence[str | os.PathLike | Image.Image],
        short_side: int,
        source: str = "images",
        workers: int = 8,
    ) -> BackgroundBank:
        """Photo files and/or PIL images, shorter side resized to ``short_side``; an unreadable
        file raises, naming it."""
        decoded = _decode_all(list(images), short_side, workers, source)
        names = [
            f"image {i}" if isinstance(item, Image.Image) else str(item)
            for i, item in enumerate(images)
        ]
        return cls.from_arrays(decoded, names, source)

    @classmethod
    def procedural(
        cls, count: int, short_side: int, seed: int, name: str = "procedural"
    ) -> BackgroundBank:
        """``count`` seeded textures, landscape or portrait, aspect up to 3:2 (no files needed)."""
        rng = np.random.default_rng(seed)
        images = []
        for _ in range(count):
            long_side = int(round(short_side * rng.uniform(1.0, 1.5)))
            h, w = (short_side, long_side) if rng.uniform() < 0.5 else (long_side, short_side)
            images.append(texture(np.random.default_rng(rng.integers(2**63)), h, w))
        return cls.from_arrays(
            images, [f"{name}-{i:04d}" for i in range(count)], f"{name}(seed={seed})"
        )

    def image(self, index: int) -> torch.Tensor:
        """Background ``index`` as uint8 (3, h, w)."""
        (y, x), (h, w) = self.origins[index].tolist(), self.sizes[index].tolist()
        return self.pixels[:, y : y + h, x : x + w]

    def fingerprints(self) -> list[str]:
        """A content hash per background (finds the same photo in two banks)."""
        return [
            hashlib.sha1(self.image(i).contiguous().numpy().tobytes()).hexdigest()
            for i in range(len(self))
        ]

    def atlas(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The atlas as RGB in [0, 1]: (1, 3, AH, AW) on ``device``."""
        return self.pixels[None].to(device=device, dtype=dtype).div_(255.0)


def _decode_all(
    images: list[str | os.PathLike | Image.Image], short_side: int, workers: int, where: object
) -> list[np.ndarray]:
    """uint8 (h, w, 3) arrays of shorter side ``short_side``; every failure reported at once."""

    def decode(item: str | os.PathLike | Image.Image) -> np.ndarray | str:
        try:
            image = (
                item.convert("RGB")
                if isinstance(item, Image.Image)
                else decode_image(item, short_side)
            )
            return np.asarray(resize_shorter(image, short_side))
        except DataError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(decode, images))
    problems = [d for d in decoded if isinstance(d, str)]
    if problems:
        raise DataProblems(where, problems)
    return decoded


def check_disjoint(banks: dict[str, BackgroundBank]) -> None:
    """Raise if any background appears in two banks (train/val/test must not share photos)."""
    _refuse_shared(
        (
            (split, name, fingerprint)
            for split, bank in banks.items()
            for name, fingerprint in zip(bank.names, bank.fingerprints(), strict=True)
        ),
        "background banks",
    )


def check_disjoint_files(root: Path) -> None:
    """Raise if one photo file lies in two split folders of ``root`` (``val/``, ``test/``).

    Compares every split folder there, also those not loaded now (training loads only ``val``,
    evaluation only ``test``), by the files' sha256: cheap, no decoding.
    """
    _refuse_shared(
        (
            (split, str(path.relative_to(root / split)), sha256_file(path))
            for split in BANK_SPLITS
            if (root / split).is_dir()
            for path in image_files(root / split)
        ),
        root,
    )


def _refuse_shared(items: Iterable[tuple[str, str, str]], where: object) -> None:
    """``items``: (split, name, fingerprint); raise if a fingerprint is in two splits."""
    owner: dict[str, tuple[str, str]] = {}
    problems = []
    for split, name, fingerprint in items:
        if fingerprint in owner and owner[fingerprint][0] != split:
            other_split, other_name = owner[fingerprint]
            problems.append(
                f"background {name!r} of {split!r} is also in {other_split!r} as {other_name!r}"
            )
        owner.setdefault(fingerprint, (split, name))
    if problems:
        raise DataProblems(where, problems)


def load_banks(
    source: str | os.PathLike | None,
    short_side: int,
    splits: tuple[str, ...] = BANK_SPLITS,
    seed: int = 0,
    count: int = 100,
) -> dict[str, BackgroundBank]:
    """Banks per split, checked disjoint.

    ``source``: a folder holding one sub-folder per split (``val/``, ``test/``, as the paper's
    background sets), a named set (``paper``, see :mod:`bgbias.data.background_sets`), or
    None / ``"procedural"`` for seeded textures (``count`` per split).
    """
    source = resolve_source(source)
    if source is None or str(source) == "procedural":
        banks = {
            split: BackgroundBank.procedural(
                count, short_side, seed=seed * 1000 + 17 + i, name=f"procedural-{split}"
            )
            for i, split in enumerate(BANK_SPLITS)
            if split in splits
        }
        check_disjoint(banks)
        return banks
    root = Path(source)
    missing = [s for s in splits if not (root / s).is_dir()]
    if missing:
        raise DataError(
            f"{root}: background folder needs sub-folders {', '.join(splits)} "
            f"(missing: {', '.join(missing)})"
        )
    check_disjoint_files(root)
    return {split: BackgroundBank.from_folder(root / split, short_side) for split in splits}


BackgroundSpec = str | os.PathLike | Sequence[str | os.PathLike | Image.Image] | BackgroundBank


class BackgroundSource:
    """Where BGAugment's backgrounds come from: checked when made, decoded per shorter side.

    ``spec``: a folder of photos (recursively; one laid out as the paper's sets, with ``val/``
    and ``test/``, gives its ``val/`` photos so its test photos stay unseen), a named set
    (``"paper"`` once fetched: its ``val`` photos, as the paper's BGAugment), ``"procedural"``
    (the CLI's seeded ``val`` textures), a list of photo paths and/or PIL images, or a
    :class:`BackgroundBank` (used as it is, whatever the shorter side asked for).
    """

    def __init__(self, spec: BackgroundSpec, procedural_count: int = 100):
        self.spec = spec
        self.procedural_count = procedural_count
        self.folder: Path | None = None
        if isinstance(spec, BackgroundBank):
            self.kind, self.description = "bank", spec.source
        elif isinstance(spec, (str, os.PathLike)) and str(spec) == "procedural":
            self.kind, self.description = "procedural", "procedural"
        elif isinstance(spec, (str, os.PathLike)):
            self.kind, self.description = "folder", str(spec)
            self.folder = _photo_folder(spec)
        elif isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
            self.kind, self.description = "images", f"{len(spec)} images"
            _check_images(spec)
        else:
            raise ConfigError(
                "BGAugment backgrounds: a folder, a named set (paper), 'procedural' or a list of "
                f"photo paths / PIL images, not {type(spec).__name__}"
            )

    def __repr__(self) -> str:
        return f"BackgroundSource({self.description!r})"

    def bank(self, short_side: int) -> BackgroundBank:
        """The backgrounds, shorter side resized to ``short_side`` (a bank: as it is)."""
        if self.kind == "bank":
            return self.spec
        if self.kind == "procedural":
            banks = load_banks("procedural", short_side, ("val",), count=self.procedural_count)
            return banks["val"]
        if self.kind == "folder":
            return BackgroundBank.from_folder(self.folder, short_side)
        return BackgroundBank.from_images(self.spec, short_side, "BGAugment backgrounds")


def _photo_folder(spec: str | os.PathLike) -> Path:
    """The folder of photos that ``spec`` names, checked to hold some (raises naming it)."""
    named = str(spec) in BACKGROUND_SETS
    folder = Path(resolve_source(spec))  # a set not fetched raises with the fetch command
    if not folder.is_dir():
        raise DataError(
            f"{folder}: background folder not found (BGAugment takes a folder of photos, a "
            f"named set: {', '.join(BACKGROUND_SETS.names())}, 'procedural' or a list of images)"
        )
    if named or all((folder / split).is_dir() for split in BANK_SPLITS):
        folder = folder / "val"  # BGAugment trains on val backgrounds (PAPER.md section 4)
    if not image_files(folder):
        raise DataError(f"{folder}: background folder has no images (JPEG, PNG, WebP, ...)")
    return folder


def _check_images(images: Sequence) -> None:
    """A non-empty list of PIL images and existing files (raises naming the missing ones)."""
    if len(images) == 0:
        raise DataError("BGAugment backgrounds: the list of images is empty")
    for item in images:
        if not isinstance(item, (str, os.PathLike, Image.Image)):
            raise ConfigError(
                "BGAugment backgrounds: a list of photo paths or PIL images, "
                f"not of {type(item).__name__}"
            )
    missing = [
        f"{item}: background image not found"
        for item in images
        if not isinstance(item, Image.Image) and not Path(item).is_file()
    ]
    if missing:
        raise DataProblems("BGAugment backgrounds", missing)
