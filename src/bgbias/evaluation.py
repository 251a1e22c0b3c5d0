"""Clean vs replaced-background retrieval for a model: the paper's pair of numbers.

The test split is decoded and transformed once; each batch is embedded clean and with its
backgrounds replaced ``repeats`` times (fresh seeded draws from the test bank), so a whole
evaluation is one pass over the data. Corrupted metrics are reported as mean and sample
standard deviation (ddof=1) over the repeats, with every repeat's value.
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import __version__
from .adapters import AdapterOptions, Embedder, load_embedder
from .augment import BackgroundReplacer
from .data.background_sets import resolve_source
from .data.backgrounds import BackgroundBank, load_banks
from .data.datasets import MASKS_HINT, IndexedDataset, MaskedImageDataset
from .data.registry import open_split
from .data.transforms import PairedTransform
from .devices import resolve_device
from .errors import ConfigError, DataError, OutputError
from .io import ensure_writable_dir, write_json
from .metrics import METRIC_NAMES, Distance, retrieval_metrics
from .progress import progress_bar
from .removal import BackgroundRemover, MeasuredEmbedder, load_remover

# how evaluation ranks, whatever the loss trained with: cosine, as retrieval_metrics does by
# default (a bgbias model's embeddings are unit length, so euclidean and dot rank the same)
EVALUATION_DISTANCE: Distance = "cosine"


@dataclass
class Embeddings:
    labels: torch.Tensor  # (N,)
    clean: torch.Tensor  # (N, D)
    corrupted: list[torch.Tensor]  # repeats x (N, D)


@torch.no_grad()
def embed(
    model: torch.nn.Module,
    dataset: MaskedImageDataset,
    replacer: BackgroundReplacer | None = None,
    repeats: int = 0,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
) -> Embeddings:
    """Embed ``dataset`` (eval transform) clean and, with a ``replacer``, ``repeats`` times with
    replaced backgrounds; repeat r draws per-image backgrounds from ``Generator(seed + r)``."""
    if repeats and replacer is None:
        raise ValueError("repeats > 0 needs a replacer (a background bank)")
    if repeats and not dataset.has_masks:
        raise DataError(
            f"{dataset.name}: replacing backgrounds needs masks; " + MASKS_HINT.format(root="ROOT")
        )
    device = torch.device(device)
    model = model.to(device)
    if isinstance(model, torch.nn.Module):
        model.eval()
    draws = [
        replacer.draw(len(dataset), torch.Generator().manual_seed(seed + r)) for r in range(repeats)
    ]
    loader = DataLoader(
        IndexedDataset(dataset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    labels, clean, corrupted = [], [], [[] for _ in range(repeats)]
    bar = progress_bar(len(dataset), f"embedding {dataset.name}", unit="img", enabled=progress)
    for images, masks, batch_labels, index in loader:
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        labels.append(batch_labels)
        clean.append(model(images).float().cpu())
        for r in range(repeats):
            corrupted[r].append(model(replacer(images, masks, draw=draws[r][index])).float().cpu())
        bar.update(len(index))
    bar.close()
    return Embeddings(torch.cat(labels), torch.cat(clean), [torch.cat(c) for c in corrupted])


def summarize(values: list[float]) -> dict[str, Any]:
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "values": [float(v) for v in array]}


def evaluate(
    model: torch.nn.Module,
    dataset: MaskedImageDataset,
    bank: BackgroundBank | None,
    repeats: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    metrics=retrieval_metrics,
) -> dict[str, Any]:
    """``{"clean": {metric: value}, "corrupted": {metric: {"mean", "std", "values"}}, ...}``;
    ``metrics(embeddings, labels)``: how rows are ranked (fused dual vectors rank otherwise)."""
    started = time.perf_counter()
    recipe = model.recipe
    replacer = BackgroundReplacer(bank, recipe) if bank is not None and repeats else None
    result = embed(
        model,
        dataset,
        replacer,
        repeats if replacer else 0,
        seed,
        batch_size,
        device,
        num_workers,
        progress,
    )
    clean = metrics(result.clean, result.labels)
    per_repeat = [metrics(e, result.labels) for e in result.corrupted]
    out: dict[str, Any] = {
        "clean": clean,
        "corrupted": {m: summarize([r[m] for r in per_repeat]) for m in METRIC_NAMES}
        if per_repeat
        else None,
        "repeats": len(per_repeat),
        "seed": seed,
        "images": len(dataset),
        "classes": dataset.num_classes,
        "backgrounds": {"source": bank.source, "count": len(bank)} if bank is not None else None,
        "recipe": recipe.name,
        "distance": EVALUATION_DISTANCE,
        "bgbias_version": __version__,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if any(isinstance(v, float) and math.isnan(v) for v in clean.values()):  # null in the file
        out["note"] = (
            "metrics are null: no test class has two images, so no query has a match to find"
        )
    return out


def default_output_path(checkpoint: str | os.PathLike, split: str, variant: str = "") -> Path:
    """``<checkpoint stem>.<split>[.<variant>].eval.json`` beside the checkpoint."""
    checkpoint = Path(checkpoint)
    middle = f"{split}.{variant}" if variant else split
    return checkpoint.with_name(f"{checkpoint.stem}.{middle}.eval.json")


def evaluate_model(
    model: str | Embedder,
    dataset: str | None = None,
    root: str | os.PathLike | None = None,
    split: str = "test",
    repeats: int = 5,
    backgrounds: str | os.PathLike | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    num_workers: int = 0,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    options: AdapterOptions | None = None,
    query_masking: str | BackgroundRemover | None = None,
    fill: str = "mean",
    fusion: str | None = None,
    mask_model: str | BackgroundRemover = "u2netp",
) -> tuple[dict[str, Any], Path]:
    """Evaluate a model in any form :func:`bgbias.adapters.load_embedder` reads (a bgbias
    checkpoint, a backbone name, ...) on ``split``; write and return the result JSON.

    A bgbias checkpoint supplies the dataset, root and background defaults of its training
    config and the default output path beside it; other models need ``dataset``, ``root`` and
    ``out``. The corrupted test draws from the ``test`` bank of ``backgrounds``.

    ``query_masking`` (a mask model name, or a :class:`bgbias.removal.BackgroundRemover`):
    test-time background removal. Every test image is a query and a gallery item (the paper's
    protocol), so every image the model embeds, clean and with its background replaced, first
    has its background removed by the mask model (predicted on that image) and filled with
    ``fill``. The result's ``inference`` gives the measured milliseconds per image.

    ``fusion`` (``full``, ``foreground``, ``rrf``, ``weighted:W``): fused dual-vector search,
    :mod:`bgbias.search.fused_eval`; every image is embedded as it is and with its background
    removed by ``mask_model``, and neighbours are ranked by the fusion rule over both.
    """
    from .search.fused_eval import FusedEmbedder, fused_retrieval_metrics
    from .search.fusion import parse_fusion

    rule = parse_fusion(fusion) if fusion is not None else None
    if rule is not None and query_masking is not None:
        raise ConfigError(
            "--fusion and --query-masking: choose one (--fusion foreground is query masking)"
        )
    embedder = model if isinstance(model, Embedder) else load_embedder(model, options)
    masking = mask_model if rule is not None else query_masking
    remover = (
        load_remover(masking, fill, str(resolve_device(device)))
        if isinstance(masking, str)
        else masking
    )
    variant = f"query-masking-{remover.name}" if remover is not None else ""
    if rule is not None:
        variant = f"fusion-{rule.name.replace(':', '-')}-{remover.name}"
    config = embedder.config
    background_seed, background_count, check_sizes = 0, 100, True
    if config is not None:
        dataset = dataset or config.data.dataset
        root = root or config.data.root
        backgrounds = config.backgrounds.source if backgrounds is None else backgrounds
        background_seed, background_count = config.backgrounds.seed, config.backgrounds.count
        check_sizes = config.data.check_sizes
        out = out if out is not None else default_output_path(embedder.spec, split, variant)
    elif dataset is None or root is None or out is None:
        raise ConfigError(
            f"{embedder.spec}: not a bgbias checkpoint; pass --dataset, --root, --out"
        )
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; evaluate writes a file there (name a .json)")
    if repeats > 0:
        resolve_source(backgrounds)  # a photo set not fetched stops here, before any data
    recipe = embedder.recipe
    test_set = open_split(
        dataset,
        root,
        split,
        PairedTransform(recipe, train=False),
        require_masks=repeats > 0,
        check_sizes=check_sizes,
    )
    bank = None
    if repeats > 0:
        bank = load_banks(
            backgrounds,
            recipe.resize,
            splits=("test",),
            seed=background_seed,
            count=background_count,
        )["test"]
    ensure_writable_dir(out.parent)  # every input checked: only now is a folder made
    measured = (
        FusedEmbedder(embedder, remover, rule)
        if rule is not None
        else MeasuredEmbedder(embedder, remover)
    ).to(resolve_device(device))
    metrics = (
        functools.partial(fused_retrieval_metrics, fusion=rule)
        if rule is not None
        else functools.partial(retrieval_metrics, distance=EVALUATION_DISTANCE)
    )
    result = evaluate(
        measured,
        test_set,
        bank,
        repeats,
        seed,
        batch_size,
        measured.device,
        num_workers,
        progress,
        metrics,
    )
    result = {
        "model": measured.describe(),
        "inference": measured.cost() | {"batch_size": batch_size},
        "dataset": {"name": dataset, "root": str(root), "split": split},
        **result,
        "path": str(out),
    }
    write_json(out, result)
    return result, out
