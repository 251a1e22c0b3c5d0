"""``open_clip:<arch>[:<pretrained tag or file>]``: an OpenCLIP image tower's embeddings.

The preprocessing is the model's own (its image size, mean and std; CLIP resizes the shorter
side to the input size and centre crops, bicubic where bgbias resizes bilinearly).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import (
    AdapterForm,
    AdapterOptions,
    TorchEmbedder,
    external_recipe,
    missing_package,
    register_form,
)


class ImageTower(nn.Module):
    """(B, 3, H, W) -> (B, D) unit-length image embeddings of a CLIP model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images, normalize=True)


def load_open_clip(spec: str, options: AdapterOptions) -> TorchEmbedder:
    arch, _, pretrained = spec.partition(":")
    try:
        import open_clip
    except Exception as exc:  # noqa: BLE001 - a broken torchvision raises RuntimeError too
        raise missing_package("open_clip:<arch>", "open_clip", "open-clip", exc) from None
    pretrained = pretrained or options.weights or None
    try:
        model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
    except Exception as exc:  # noqa: BLE001 - unknown arch, tag, download or file errors
        raise ConfigError(
            f"open_clip:{spec}: could not load ({type(exc).__name__}: {exc}); offline, "
            "name a local weight file: open_clip:<arch>:<file>"
        ) from None
    visual = model.visual
    size = visual.image_size
    recipe = external_recipe(
        f"open_clip:{arch}",
        options,
        input_size=int(size[-1] if isinstance(size, (tuple, list)) else size),
        mean=tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN),
        std=tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD),
        crop_pct=1.0,
    )
    return TorchEmbedder(
        ImageTower(model),
        f"open_clip:{spec}",
        "open_clip",
        recipe,
        label=f"open_clip:{spec}",
        details={
            "arch": arch,
            "pretrained": pretrained,
            "open_clip_version": open_clip.__version__,
        },
    )


register_form(
    AdapterForm(
        "open_clip",
        load_open_clip,
        "open_clip:<arch>[:<tag or file>]",
        "an OpenCLIP image tower (pip install bgbias[open-clip])",
        prefix="open_clip",
        requires=("open_clip",),
    )
)
