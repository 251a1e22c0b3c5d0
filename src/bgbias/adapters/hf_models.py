"""``hf:<model id or local folder>``: a Hugging Face transformers image model.

The embedding is ``get_image_features`` for CLIP-like models, else the model's pooled output
(``pooler_output``: DINOv2's normalised CLS token, a ConvNet's pooled features), else the CLS
token of the last hidden state. The preprocessing comes from the folder's image-processor config
(mean, std, crop size); a processor that resizes to a fixed square is approximated by resizing
the shorter side and centre cropping. A local folder (``save_pretrained``) loads offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


class ImageFeatures(nn.Module):
    """(B, 3, H, W) pixel values -> (B, D) features of a transformers image model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "get_image_features"):
            out = self.model.get_image_features(pixel_values=images)
            if isinstance(out, torch.Tensor):
                return out
        else:
            out = self.model(pixel_values=images)
        for name in ("image_embeds", "pooler_output"):
            value = getattr(out, name, None)
            if isinstance(value, torch.Tensor):
                return value.flatten(1)
        return out.last_hidden_state[:, 0]


def _processor_preprocessing(processor: Any) -> dict[str, Any]:
    """input_size, mean, std and crop_pct from an image processor's settings."""
    found: dict[str, Any] = {}
    if processor is None:
        return found
    if getattr(processor, "image_mean", None) is not None:
        found["mean"] = tuple(float(v) for v in processor.image_mean)
        found["std"] = tuple(float(v) for v in processor.image_std)
    size = dict(getattr(processor, "size", None) or {})
    crop = dict(getattr(processor, "crop_size", None) or {})
    if getattr(processor, "do_center_crop", False) and crop.get("height"):
        found["input_size"] = int(crop["height"])
        if size.get("shortest_edge"):
            found["crop_pct"] = found["input_size"] / int(size["shortest_edge"])
    elif size.get("height"):
        found["input_size"], found["crop_pct"] = int(size["height"]), 1.0
    elif size.get("shortest_edge"):
        found["input_size"], found["crop_pct"] = int(size["shortest_edge"]), 1.0
    return found


def load_hf(spec: str, options: AdapterOptions) -> TorchEmbedder:
    try:
        import transformers
    except Exception as exc:  # noqa: BLE001 - a package that fails to import is missing too
        raise missing_package("hf:<model>", "transformers", "hf", exc) from None
    local = Path(spec).is_dir()
    kwargs = {"local_files_only": True} if local else {}
    try:
        model = transformers.AutoModel.from_pretrained(spec, **kwargs)
    except Exception as exc:  # noqa: BLE001 - hub, file and config errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"hf:{spec}: could not load a transformers model ({first}); offline, name a local "
            "folder written by save_pretrained"
        ) from None
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(spec, **kwargs)
    except Exception:  # noqa: BLE001 - no processor config: the user's options or defaults
        processor = None
    recipe = external_recipe(
        f"hf:{Path(spec).name}", options, **_processor_preprocessing(processor)
    )
    return TorchEmbedder(
        ImageFeatures(model),
        f"hf:{spec}",
        "hf",
        recipe,
        label=f"hf:{Path(spec).name if local else spec}",
        details={
            "model_type": getattr(model.config, "model_type", None),
            "local": local,
            "image_processor": type(processor).__name__ if processor is not None else None,
            "transformers_version": transformers.__version__,
        },
    )


register_form(
    AdapterForm(
        "hf",
        load_hf,
        "hf:<model id or local folder>",
        "a Hugging Face transformers image model (pip install bgbias[hf])",
        prefix="hf",
        requires=("transformers",),
    )
)
