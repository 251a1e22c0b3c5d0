"""A small CNN trained from scratch: the generated benchmark's backbone on a laptop CPU."""

from __future__ import annotations

import torch
from torch import nn

from ..data.transforms import RECIPES, Normalization, Recipe
from .registry import BACKBONES, BackboneSpec

# the generated benchmark's 64 px images, used whole (no resize) with milder crops
RECIPE = RECIPES.register(
    "generated",
    Recipe(
        "generated",
        resize=64,
        crop=64,
        scale=(0.5, 1.0),
        normalization=Normalization("RGB", (127.5, 127.5, 127.5), (64.0, 64.0, 64.0)),
    ),
)

WIDTH = 48


def _conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """Four stride-2 conv-BN-ReLU stages (the last two with a second 3x3 conv, cheap at that
    resolution), then global max pooling: (B, 3, H, W) -> (B, 4 * ``width``).

    Max pooling lets an object's features win over the background's wherever the object is.
    """

    def __init__(self, width: int = WIDTH):
        super().__init__()
        channels = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for stage, (cin, cout) in enumerate(zip(channels, channels[1:], strict=False)):
            layers += _conv(cin, cout, stride=2)
            if stage >= 2:
                layers += _conv(cout, cout, stride=1)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.features_dim = channels[-1]
        self.to(memory_format=torch.channels_last)  # oneDNN's native layout for convolutions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.pool(self.features(x)).flatten(1)


def _build(pretrained: bool, weights: str | None) -> nn.Module:
    model = SmallCNN()
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model


BACKBONES.register(
    "small_cnn",
    BackboneSpec(
        _build,
        4 * WIDTH,
        "generated",
        has_pretrained=False,
        description="6-layer CNN trained from scratch (generated benchmark, CPU)",
    ),
)
