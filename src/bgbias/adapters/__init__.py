"""Any retrieval model as an :class:`Embedder`, named in one of the registered forms."""

from . import (  # noqa: F401  (each module registers its forms)
    bgbias_models,
    exported,
    hf_models,
    open_clip_models,
    python_models,
    timm_models,
)
from .base import (
    ADAPTERS,
    AdapterForm,
    AdapterOptions,
    Embedder,
    TorchEmbedder,
    external_recipe,
    load_embedder,
)

__all__ = [
    "ADAPTERS",
    "AdapterForm",
    "AdapterOptions",
    "Embedder",
    "TorchEmbedder",
    "external_recipe",
    "load_embedder",
]
