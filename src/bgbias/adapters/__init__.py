"""Any retrieval model as an :class:`Embedder`, named in one of the registered forms."""

from . import bgbias_models  # noqa: F401  (registers the forms)
from .base import ADAPTERS, AdapterForm, AdapterOptions, Embedder, TorchEmbedder, load_embedder

__all__ = [
    "ADAPTERS",
    "AdapterForm",
    "AdapterOptions",
    "Embedder",
    "TorchEmbedder",
    "load_embedder",
]
