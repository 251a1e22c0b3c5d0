"""Backbones by name (a registry, as in timm): each maps (B, 3, H, W) images to (B, F) features
and names the preprocessing recipe its weights expect."""

from . import bninception, efficientnet, small_cnn  # noqa: F401  (register the backbones)
from .registry import BACKBONES, BackboneSpec, backbone_spec

__all__ = ["BACKBONES", "BackboneSpec", "backbone_spec"]
