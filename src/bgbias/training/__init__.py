"""Training on Lightning: the sampler, the data module (splits, masks, val background bank),
the LightningModule (model + DML loss + BGAugment), the run folder, and :func:`fit`.

BGAugment runs as a batch step on the training device (Kobs & Hotho 2022, BGAugment); the best
checkpoint follows the mode's validation metric (clean or corrupted val MAP@R).
"""

from .datamodule import MaskedDataModule, resolve_recipe
from .fit import fit, resolve_precision
from .module import EmbeddingModule, TrainingDiverged
from .sampler import SeededMPerClassSampler

__all__ = [
    "EmbeddingModule",
    "MaskedDataModule",
    "SeededMPerClassSampler",
    "TrainingDiverged",
    "fit",
    "resolve_precision",
    "resolve_recipe",
]
