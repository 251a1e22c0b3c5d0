"""Embedding models: a registered backbone, Linear to the embedding size, L2 normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import backbone_spec
from .data.transforms import Recipe
from .errors import ConfigError


class EmbeddingModel(nn.Module):
    """(B, 3, H, W) preprocessed images -> (B, D) unit-length embeddings.

    With ``freeze_batchnorm`` every BatchNorm layer stays in eval mode during training: the
    running statistics of a pretrained backbone are used and kept, as in the paper.
    """

    def __init__(
        self,
        backbone: nn.Module,
        features: int,
        embedding_size: int,
        recipe: Recipe,
        freeze_batchnorm: bool,
    ):
        super().__init__()
        self.backbone = backbone
        # embedding_size 0: no head, the backbone's own (normalised) features
        self.head = nn.Linear(features, embedding_size) if embedding_size else nn.Identity()
        self._size = embedding_size or features
        self.recipe = recipe
        self.freeze_batchnorm = freeze_batchnorm

    def _batchnorms(self):
        return (m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if mode and self.freeze_batchnorm:
            for module in self._batchnorms():
                module.eval()
        return self

    @property
    def embedding_size(self) -> int:
        return self._size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=-1)


def build_model(
    backbone: str,
    pretrained: bool = True,
    embedding_size: int = 128,
    weights: str | None = None,
    freeze_batchnorm: bool | None = None,
) -> EmbeddingModel:
    """A model from the backbone registry. ``freeze_batchnorm`` defaults to ``pretrained``:
    a pretrained backbone keeps its BatchNorm statistics, one trained from scratch learns them."""
    spec = backbone_spec(backbone)
    if pretrained and not spec.has_pretrained and not weights:
        raise ConfigError(
            f"backbone {backbone!r} has no pretrained weights; set model.pretrained=false"
        )
    if embedding_size < 0:
        raise ConfigError(f"embedding_size must be positive (or 0: no head), got {embedding_size}")
    module = spec.build(pretrained, weights)
    freeze = pretrained if freeze_batchnorm is None else freeze_batchnorm
    return EmbeddingModel(module, spec.features, embedding_size, spec.preprocessing(), freeze)
