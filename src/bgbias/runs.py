"""A trained run as files, read without Lightning: checkpoint -> model, loss and config, and the
label a run gets in tables.

Checkpoints are Lightning's (``hyper_parameters`` + ``state_dict``), but reading one only needs
torch: evaluation, attribution, reports, audits and exports never import Lightning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from . import __version__
from .config import from_dict
from .errors import CheckpointError
from .losses import LOSSES, build_loss
from .models import EmbeddingModel, build_model

CHECKPOINT_FORMAT = 1
MODE_SUFFIXES = {
    "base": "",
    "bgaugment": " + BGAugment",
    "base_corrupted": " (corrupted selection)",
}


@dataclass
class TrainedModel:
    """A bgbias run's embedding model (eval mode), its training loss and its config."""

    model: EmbeddingModel
    loss: torch.nn.Module
    config: DictConfig
    num_classes: int
    path: Path

    @property
    def distance(self):
        """The loss's own distance (what attribution maps differentiate, the paper's Section 6)."""
        return self.loss.distance

    def describe(self) -> dict[str, Any]:
        return describe_run(self.config) | {"checkpoint": str(self.path.resolve())}


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict of a bgbias run; foreign, damaged or too-new files raise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle errors, ...
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    hparams = raw.get("hyper_parameters") if isinstance(raw, dict) else None
    if not hparams or "config" not in hparams or "format" not in hparams:
        raise CheckpointError(f"{path}: not a bgbias checkpoint (no bgbias hyperparameters)")
    if hparams["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {hparams['format']} (bgbias "
            f"{hparams.get('bgbias_version')}); this bgbias {__version__} "
            f"reads format {CHECKPOINT_FORMAT}"
        )
    if "state_dict" not in raw:
        raise CheckpointError(f"{path}: checkpoint has no weights (state_dict)")
    return raw


def load_trained_model(path: str | os.PathLike) -> TrainedModel:
    """The model and loss of a bgbias checkpoint, on the CPU, in eval mode."""
    path = Path(path)
    raw = read_checkpoint(path)
    hparams = raw["hyper_parameters"]
    config = from_dict(hparams["config"])
    num_classes = int(hparams["num_classes"])
    model = build_model(
        config.model.backbone,
        pretrained=False,  # the weights come from the checkpoint
        embedding_size=config.model.embedding_size,
        freeze_batchnorm=config.model.freeze_batchnorm,
    )
    loss = build_loss(config.loss.name, dict(config.loss.params), num_classes, model.embedding_size)
    state = raw["state_dict"]
    parts = {"model.": model, "loss_fn.": loss}
    try:
        for prefix, module in parts.items():
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit its config ({first})") from None
    return TrainedModel(model.eval(), loss.eval(), config, num_classes, path)


def describe_run(config: DictConfig) -> dict[str, Any]:
    """The model part of result files, from a training config."""
    return {
        "preset": config.name,
        "loss": config.loss.name,
        "mode": config.mode,
        "bgaugment": config.mode == "bgaugment",
        "backbone": config.model.backbone,
        "dataset": config.data.dataset,
        "seed": config.seed,
    }


def row_label(model: dict[str, Any]) -> str:
    """ "ArcFace", "ArcFace + BGAugment", ... from a result's model description."""
    if model.get("label"):
        return str(model["label"])
    loss = model.get("loss")
    name = LOSSES.get(loss).display_name if loss in LOSSES else str(loss)
    return name + MODE_SUFFIXES.get(model.get("mode", "base"), "")
