"""The backbone registry; ``timm:<name>`` resolves any timm model when timm is installed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..data.transforms import RECIPES, Normalization, Recipe
from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class BackboneSpec:
    """``build(pretrained, weights)`` returns a module mapping (B, 3, H, W) to (B, ``features``).

    ``weights`` is an optional path to a weight file; ``recipe`` is the preprocessing its
    pretrained weights expect (a name in :data:`bgbias.data.transforms.RECIPES`, or a Recipe).
    """

    build: Callable[[bool, str | None], nn.Module]
    features: int
    recipe: str | Recipe
    has_pretrained: bool
    description: str

    def preprocessing(self) -> Recipe:
        return RECIPES.get(self.recipe) if isinstance(self.recipe, str) else self.recipe


BACKBONES: Registry[BackboneSpec] = Registry("backbone")
# One spelling for a timm model, everywhere a model is named (a training config's backbone,
# a model spec): the ``form:value`` of every other model form. ``timm/<name>`` (the spelling
# of earlier releases) is an error naming it.
TIMM_PREFIX = "timm:"
OLD_TIMM_PREFIX = "timm/"


def names_a_backbone(name: str) -> bool:
    """Whether ``name`` is a registered backbone, or a timm model in the old spelling (so
    that :func:`backbone_spec` says how to write it)."""
    return name in BACKBONES or name.startswith(OLD_TIMM_PREFIX)


def backbone_spec(name: str) -> BackboneSpec:
    if name.startswith(OLD_TIMM_PREFIX):
        raise ConfigError(
            f"backbone {name!r}: timm models are written {TIMM_PREFIX}<name>, "
            f"here {TIMM_PREFIX}{name[len(OLD_TIMM_PREFIX) :]}"
        )
    if name.startswith(TIMM_PREFIX):
        return _timm_spec(name[len(TIMM_PREFIX) :])
    if name not in BACKBONES:
        raise ConfigError(
            f"unknown backbone {name!r}; valid: {', '.join(BACKBONES.names())}, "
            f"or {TIMM_PREFIX}<any timm model> (`pip install bgbias[timm]`)"
        )
    return BACKBONES.get(name)


def _timm_spec(model_name: str) -> BackboneSpec:
    try:
        import timm
    except Exception as exc:  # noqa: BLE001 - a broken torchvision raises RuntimeError too
        reason = "is not installed" if isinstance(exc, ImportError) else f"failed: {exc}"
        raise ConfigError(
            f"{TIMM_PREFIX}<name> models need timm (`pip install bgbias[timm]`); import timm "
            f"{reason}"
        ) from None
    if not timm.is_model(model_name):
        raise ConfigError(
            f"{TIMM_PREFIX}{model_name}: timm has no model {model_name!r} (see timm.list_models())"
        )
    cfg = timm.get_pretrained_cfg(model_name)
    cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else (cfg or {})
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    mean = tuple(float(v) * 255 for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) * 255 for v in cfg.get("std", (0.229, 0.224, 0.225)))
    recipe = Recipe(
        f"{TIMM_PREFIX}{model_name}",
        resize=int(round(size / cfg.get("crop_pct", 0.875))),
        crop=size,
        normalization=Normalization("RGB", mean, std),
    )

    def build(pretrained: bool, weights: str | None) -> nn.Module:
        kwargs = {"pretrained_cfg_overlay": {"file": weights}} if weights else {}
        return timm.create_model(
            model_name, pretrained=pretrained or bool(weights), num_classes=0, **kwargs
        )

    features = timm.create_model(model_name, pretrained=False, num_classes=0).num_features
    return BackboneSpec(build, features, recipe, True, f"timm model {model_name}")
