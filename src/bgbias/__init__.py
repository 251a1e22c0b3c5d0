"""bgbias: measure and remove background bias in deep metric learning models.

The Python API, for your own training loop and notebooks::

    import bgbias

    augment = bgbias.BGAugment("photos/", seed=0)           # backgrounds: folder, "paper", ...
    train_set = bgbias.MaskedImageFolder("data/shop", transform=bgbias.paper_transforms()[0])
    images = augment(images, masks)                         # (B, 3, H, W), (B, 1, H, W) in [0, 1]
    result = bgbias.audit(model, "photos/")                 # -> AuditResult (.save(out), .verdicts)

Every name is imported on first use (a module ``__getattr__``): ``import bgbias`` alone imports
no torch, and ``bgbias.BGAugment`` imports no Lightning, onnxruntime or FastAPI.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("bgbias")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# public name -> the module that defines it
_EXPORTS = {
    "BGAugment": "bgbias.augment",
    "MaskedImageFolder": "bgbias.data.image_folder",
    "PairedTransform": "bgbias.data.transforms",
    "paper_transforms": "bgbias.data.image_folder",
    "predict_masks": "bgbias.masks.predict",
    "audit": "bgbias.auditing.api",
    "AuditResult": "bgbias.auditing.api",
    "retrieval_metrics": "bgbias.metrics",
    "attention_scores": "bgbias.attribution",
}

__all__ = [  # a literal list, so linters see the names; a test checks it matches _EXPORTS
    "__version__",
    "BGAugment",
    "MaskedImageFolder",
    "PairedTransform",
    "paper_transforms",
    "predict_masks",
    "audit",
    "AuditResult",
    "retrieval_metrics",
    "attention_scores",
]
if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from .attribution import attention_scores
    from .auditing.api import AuditResult, audit
    from .augment import BGAugment
    from .data.image_folder import MaskedImageFolder, paper_transforms
    from .data.transforms import PairedTransform
    from .masks.predict import predict_masks
    from .metrics import retrieval_metrics


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bgbias' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
