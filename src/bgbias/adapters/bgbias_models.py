"""bgbias's own models: a checkpoint bgbias trained, or a registered backbone by name (its
L2-normalised pooled features, no DML training)."""

from __future__ import annotations

from ..backbones import BACKBONES
from ..backbones.registry import names_a_backbone
from ..io import sha256_file
from ..models import build_model
from ..runs import load_trained_model, row_label
from .base import AdapterForm, AdapterOptions, TorchEmbedder, register_form


def load_checkpoint_embedder(spec: str, options: AdapterOptions) -> TorchEmbedder:
    trained = load_trained_model(spec)
    description = trained.describe() | {"sha256": sha256_file(spec)}
    embedder = TorchEmbedder(
        trained.model,
        spec,
        "checkpoint",
        trained.model.recipe,
        label=row_label(description),
        details=description,
    )
    embedder.config = trained.config
    embedder.distance = trained.distance
    return embedder


def load_backbone_embedder(spec: str, options: AdapterOptions) -> TorchEmbedder:
    model = build_model(
        spec, pretrained=options.pretrained, embedding_size=0, weights=options.weights
    )
    weights = "ImageNet" if options.pretrained or options.weights else "random"
    return TorchEmbedder(
        model,
        spec,
        "backbone",
        model.recipe,
        label=f"{spec} ({weights} weights, no DML training)",
        details={"backbone": spec, "pretrained": options.pretrained, "weights": options.weights},
    )


register_form(
    AdapterForm(
        "checkpoint",
        load_checkpoint_embedder,
        "<run>/checkpoints/best.ckpt",
        "a checkpoint bgbias trained",
        suffixes=(".ckpt",),
    )
)
register_form(
    AdapterForm(
        "backbone",
        load_backbone_embedder,
        "<backbone name>",
        f"a bgbias backbone: {', '.join(BACKBONES.names())}",
        matches=names_a_backbone,
    )
)

__all__ = ["load_backbone_embedder", "load_checkpoint_embedder"]
