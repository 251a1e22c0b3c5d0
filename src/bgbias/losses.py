"""The five DML losses of the paper, from pytorch-metric-learning, by name.

Each loss's own ``distance`` (LpDistance for contrastive/triplet, CosineSimilarity for the
others) is what attribution maps differentiate (Kobs & Hotho 2022, Section 6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytorch_metric_learning import losses
from pytorch_metric_learning.losses import BaseMetricLossFunction

from .errors import ConfigError
from .registry import Registry


@dataclass(frozen=True)
class LossSpec:
    """``factory(**params)``; classification losses also take ``num_classes`` and
    ``embedding_size`` and own parameters (optimised with ``lr_loss``).
    ``m_per_class`` is the sampler's images per class in a batch for this loss."""

    factory: Callable[..., BaseMetricLossFunction]
    m_per_class: int
    classification: bool
    display_name: str


LOSSES: Registry[LossSpec] = Registry("loss")
LOSSES.register("contrastive", LossSpec(losses.ContrastiveLoss, 4, False, "Contrastive"))
LOSSES.register("triplet", LossSpec(losses.TripletMarginLoss, 4, False, "Triplet"))
LOSSES.register(
    "multi_similarity", LossSpec(losses.MultiSimilarityLoss, 4, False, "Multi-Similarity")
)
LOSSES.register("arcface", LossSpec(losses.ArcFaceLoss, 1, True, "ArcFace"))
LOSSES.register(
    "normalized_softmax", LossSpec(losses.NormalizedSoftmaxLoss, 1, True, "Normalized Softmax")
)


def build_loss(
    name: str, params: dict[str, Any], num_classes: int, embedding_size: int
) -> BaseMetricLossFunction:
    spec = LOSSES.get(name)
    kwargs = dict(params)
    if spec.classification:
        kwargs.update(num_classes=num_classes, embedding_size=embedding_size)
    try:
        return spec.factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"loss {name!r}: bad parameters {dict(params)} ({exc})") from None
