"""Clean vs replaced-background retrieval for a model: the paper's pair of numbers.

The test split is decoded and transformed once; each batch is embedded clean and with its
backgrounds replaced ``repeats`` times (fresh seeded draws from the test bank), so a whole
evaluation is one pass over the data. Corrupted metrics are reported as mean and sample
standard deviation (ddof=1) over the repeats, with every repeat's value.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from torch.utils.data import DataLoader

from . import __version__
from .augment import BackgroundReplacer
from .config import CORRUPTED_MONITOR
from .data.backgrounds import BackgroundBank, load_banks
from .data.datasets import MASKS_HINT, IndexedDataset, MaskedImageDataset
from .data.registry import open_split
from .data.transforms import PairedTransform
from .errors import ConfigError, DataError
from .io import write_json
from .losses import LOSSES
from .metrics import METRIC_NAMES, retrieval_metrics
from .models import build_model
from .progress import progress_bar
from .training import load_checkpoint


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
    model = model.to(device).eval()
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
    bar = progress_bar(len(dataset), f"embedding {dataset.name}", unit="img", disable=not progress)
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
) -> dict[str, Any]:
    """``{"clean": {metric: value}, "corrupted": {metric: {"mean", "std", "values"}}, ...}``."""
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
    clean = retrieval_metrics(result.clean, result.labels)
    per_repeat = [retrieval_metrics(e, result.labels) for e in result.corrupted]
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
        "bgbias_version": __version__,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return out


def default_output_path(checkpoint: str | os.PathLike, split: str) -> Path:
    """``<checkpoint stem>.<split>.eval.json`` beside the checkpoint."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.{split}.eval.json")


def describe_run(config) -> dict[str, Any]:
    """The model part of an evaluation JSON, from a training config."""
    mode = (
        "bgaugment"
        if config.bgaugment
        else ("base_corrupted" if config.monitor == CORRUPTED_MONITOR else "base")
    )
    return {
        "preset": config.name,
        "loss": config.loss.name,
        "mode": mode,
        "bgaugment": bool(config.bgaugment),
        "backbone": config.model.backbone,
        "dataset": config.data.dataset,
    }


def row_label(model: dict[str, Any]) -> str:
    """ "ArcFace", "ArcFace + BGAugment", ... from a result's model description."""
    if model.get("label"):
        return str(model["label"])
    loss = model.get("loss")
    name = LOSSES.get(loss).display_name if loss in LOSSES else str(loss)
    suffix = {"bgaugment": " + BGAugment", "base_corrupted": " (corrupted selection)"}
    return name + suffix.get(model.get("mode", "base"), "")


@dataclass
class LoadedModel:
    model: torch.nn.Module  # an EmbeddingModel
    description: dict[str, Any]  # the "model" part of result files
    config: Any | None  # the training config (None for a bare backbone)
    distance: Any  # the training loss's distance (cosine similarity for a bare backbone)

    @property
    def label(self) -> str:
        return row_label(self.description)


def load_model(
    checkpoint: str | os.PathLike | None = None,
    backbone: str | None = None,
    pretrained: bool = True,
) -> LoadedModel:
    """A checkpoint bgbias trained, or a bare ``backbone`` (its L2-normalised pooled features,
    no DML training), ready for evaluation and attribution."""
    if (checkpoint is None) == (backbone is None):
        raise ConfigError("give either a checkpoint or a backbone, not both")
    if checkpoint is not None:
        module = load_checkpoint(checkpoint)
        description = describe_run(module.config) | {"checkpoint": str(Path(checkpoint).resolve())}
        return LoadedModel(module.model, description, module.config, module.loss_fn.distance)
    model = build_model(backbone, pretrained=pretrained, embedding_size=0)
    weights = "ImageNet" if pretrained else "random"
    description = {
        "backbone": backbone,
        "pretrained": pretrained,
        "loss": None,
        "mode": "base",
        "bgaugment": False,
        "label": f"{backbone} ({weights} weights, no DML training)",
    }
    return LoadedModel(model, description, None, CosineSimilarity())


def evaluate_checkpoint(
    checkpoint: str | os.PathLike | None,
    dataset: str | None = None,
    root: str | os.PathLike | None = None,
    split: str = "test",
    repeats: int = 5,
    backgrounds: str | os.PathLike | None = None,
    seed: int = 0,
    backbone: str | None = None,
    pretrained: bool = True,
    batch_size: int = 64,
    device: str = "auto",
    num_workers: int = 0,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], Path]:
    """Evaluate a bgbias checkpoint, or a bare ``backbone`` (its L2-normalised pooled features,
    no DML training), on ``split``; write and return the result JSON.

    Dataset and background defaults come from the checkpoint's training config; the corrupted
    test draws from the ``test`` bank of ``backgrounds`` (procedural when unset).
    """
    loaded = load_model(checkpoint, backbone, pretrained)
    model, description, config = loaded.model, loaded.description, loaded.config
    background_seed, background_count, check_sizes = 0, 100, True
    if config is not None:
        dataset = dataset or config.data.dataset
        root = root or config.data.root
        backgrounds = config.backgrounds.source if backgrounds is None else backgrounds
        background_seed, background_count = config.backgrounds.seed, config.backgrounds.count
        check_sizes = config.data.check_sizes
    elif dataset is None or root is None or out is None:
        raise ConfigError("a bare backbone needs --dataset, --root and --out")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    recipe = model.recipe
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
    result = evaluate(
        model, test_set, bank, repeats, seed, batch_size, device, num_workers, progress
    )
    result = {
        "model": description,
        "dataset": {"name": dataset, "root": str(root), "split": split},
        **result,
    }
    path = Path(out) if out is not None else default_output_path(checkpoint, split)
    result["path"] = str(path)
    write_json(path, result)
    return result, path
