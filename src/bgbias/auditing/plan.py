"""An audit planned before it touches anything: every option checked, the models loaded, the
images and their masks found, the background photos read. Planning writes no file, so a typo
in any input fails in seconds and leaves a previous report as it was.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..adapters import AdapterOptions, Embedder, load_embedder
from ..cache import cache_dir
from ..data.background_sets import resolve_source
from ..data.backgrounds import BackgroundBank, load_banks
from ..devices import resolve_device
from ..errors import ConfigError
from .images import ImageSet, check_masks, find_images

log = logging.getLogger(__name__)


@dataclass
class AuditConfig:
    """What to audit and how; see ``bgbias audit --help`` for each option.

    ``models``: names in any form ``bgbias list model-forms`` shows, or ready :class:`Embedder`s
    (:func:`bgbias.audit` turns modules and callables into these). ``mask_cache``: where masks
    made by ``mask_model`` are kept (default: a bgbias folder's ``masks/``, else a folder per
    image root in bgbias's cache; ``bgbias audit`` uses ``OUT/masks``).
    """

    models: list[str | Embedder]
    images: str | os.PathLike
    out: str | os.PathLike = "audit"  # used by run_audit only: audit() returns, save() writes
    split: str | None = None
    masks: str | os.PathLike | None = None
    image_suffix: str = ""
    mask_suffix: str = ""
    mask_model: str | None = None
    mask_cache: str | os.PathLike | None = None
    backgrounds: str | os.PathLike | None = None  # photo folder (its test/), set name, procedural
    repeats: int = 5
    blend_steps: int = 5
    attention: int = 0  # images whose attention score is computed, per differentiable model
    worst: int = 8
    exclude_suspect_masks: bool = False  # drop images whose mask looks wrong (else: marked)
    grid_queries: int = 4
    top_k: int = 5
    seed: int = 0
    batch_size: int = 64
    device: str | torch.device = "auto"
    options: AdapterOptions = field(default_factory=AdapterOptions)
    progress: bool = True


@dataclass
class AuditPlan:
    """A checked audit, ready to compute: ``geometries`` are the (resize, crop) pairs the
    models need, ``banks`` the background photos at each resize."""

    config: AuditConfig
    embedders: list[Embedder]
    device: torch.device
    images: ImageSet
    mask_cache: Path
    labels: np.ndarray | None
    notes: list[str]
    geometries: set[tuple[int, int]]
    banks: dict[int, BackgroundBank]


# option -> its least value (as the CLI's argument types check them)
AT_LEAST = {
    "repeats": 1,
    "blend_steps": 2,
    "attention": 0,
    "worst": 1,
    "grid_queries": 1,
    "top_k": 1,
    "batch_size": 1,
}


def check_options(config: AuditConfig) -> None:
    """Every numeric option in range and a known mask model; a ConfigError names the option."""
    if not config.models:
        raise ConfigError("name at least one model (`bgbias list model-forms` shows the forms)")
    for name, least in AT_LEAST.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    if config.mask_model is not None:
        from ..masks.predictors import PREDICTORS

        if config.mask_model not in PREDICTORS.names():
            raise ConfigError(
                f"mask_model {config.mask_model!r} is unknown; known: {', '.join(PREDICTORS)}"
            )


def load_bank(source: str | os.PathLike | None, short_side: int) -> BackgroundBank:
    """``mixed_rand``'s backgrounds: a folder's ``test/`` photos (or the folder's own), a named
    set's (``paper``: its test photos), or the procedural test bank (the one bgbias evaluations
    use: disjoint from BGAugment's)."""
    source = resolve_source(source)  # a set not fetched raises with the fetch command
    if source is None or str(source) == "procedural":
        return load_banks(None, short_side, splits=("test",))["test"]
    folder = Path(source)
    return BackgroundBank.from_folder(
        folder / "test" if (folder / "test").is_dir() else folder, short_side
    )


def usable_labels(images: ImageSet) -> tuple[np.ndarray | None, list[str]]:
    """The labels when label metrics make sense (2+ classes with 2+ images), and notes."""
    labels = images.labels
    if labels is None:
        return None, [f"{images.layout} folder: no labels, instance metrics only"]
    counts = np.bincount(labels)
    usable = int((counts >= 2).sum())
    if usable < 2:
        return None, [
            f"too few images per class for label metrics ({usable} of {len(counts)} classes "
            "have 2+ images; 2 such classes needed): instance metrics only"
        ]
    alone = int((counts == 1).sum())
    notes = (
        [
            f"{alone} class(es) with a single image: not queries in label metrics, no "
            "mixed_same for them"
        ]
        if alone
        else []
    )
    return labels, notes


def default_mask_cache(images: ImageSet, given: str | os.PathLike | None) -> Path:
    """Where made masks go: a bgbias folder's own ``masks/``, else ``given``, else a folder in
    bgbias's cache named after the image root (so a rerun on the same folder reuses them)."""
    if images.layout == "bgbias":
        return images.root / "masks"
    if given is not None:
        return Path(given)
    key = hashlib.sha256(str(images.root.resolve()).encode()).hexdigest()[:16]
    return cache_dir("audit-masks", key)


def resolve_models(config: AuditConfig) -> list[Embedder]:
    """Every model as an Embedder (names loaded by the adapter registry), each named once."""
    embedders = [
        m if isinstance(m, Embedder) else load_embedder(m, config.options) for m in config.models
    ]
    specs = [e.spec for e in embedders]
    if len(set(specs)) != len(specs):
        raise ConfigError(f"a model is named twice: {', '.join(specs)}")
    return embedders


def plan_audit(config: AuditConfig) -> AuditPlan:
    """Check every input of ``config`` and load what the audit needs; writes nothing."""
    check_options(config)
    device = resolve_device(config.device)
    images = find_images(
        config.images, config.split, config.masks, config.image_suffix, config.mask_suffix
    )
    mask_cache = default_mask_cache(images, config.mask_cache)
    check_masks(images, config.mask_model, mask_cache)
    embedders = resolve_models(config)
    labels, notes = usable_labels(images)
    geometries = {(e.recipe.resize, e.recipe.crop) for e in embedders}
    banks = {resize: load_bank(config.backgrounds, resize) for resize, _ in geometries}
    log.info("planned: %d model(s) on %d images of %s", len(embedders), len(images), images.root)
    return AuditPlan(
        config, embedders, device, images, mask_cache, labels, notes, geometries, banks
    )
