"""Train and val splits of a dataset (with masks when the run needs them) and the val bank
(as a :class:`~bgbias.augment.BGAugment` module)."""

from __future__ import annotations

import math

import lightning as L
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, DistributedSampler

from ..augment import BGAugment
from ..config import CORRUPTED_MONITOR, monitor_key, uses_bgaugment
from ..data.backgrounds import load_banks
from ..data.datasets import MASKS_HINT, IndexedDataset
from ..data.registry import open_split
from ..data.transforms import RECIPES, PairedTransform, Recipe
from ..errors import ConfigError, DataError, MissingMasksError
from ..losses import LOSSES
from .sampler import SeededMPerClassSampler


def resolve_recipe(config: DictConfig) -> Recipe:
    """The run's preprocessing: ``data.recipe`` or the backbone's own."""
    from ..backbones import backbone_spec

    spec = backbone_spec(config.model.backbone)  # registers the backbones' recipes
    return RECIPES.get(config.data.recipe) if config.data.recipe else spec.preprocessing()


class MaskedDataModule(L.LightningDataModule):
    """Train/val splits of a dataset (with masks when needed) and the val background bank."""

    def __init__(self, config: DictConfig):
        super().__init__()
        self.config = config
        self.recipe = resolve_recipe(config)
        self.train_set = self.val_set = self.replacer = self.augment = None

    @property
    def needs_masks(self) -> bool:
        return uses_bgaugment(self.config) or monitor_key(self.config) == CORRUPTED_MONITOR

    @property
    def m_per_class(self) -> int:
        return self.config.data.m_per_class or LOSSES.get(self.config.loss.name).m_per_class

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg, data = self.config, self.config.data
        common = dict(verify=data.verify, cache=data.cache_images, check_sizes=data.check_sizes)
        why = "BGAugment and corrupted validation need masks"
        try:
            self.train_set = open_split(
                data.dataset,
                data.root,
                "train",
                PairedTransform(self.recipe, train=True),
                require_masks=uses_bgaugment(cfg),
                **common,
            )
            self.val_set = open_split(
                data.dataset,
                data.root,
                "val",
                PairedTransform(self.recipe, train=False),
                require_masks=self.needs_masks,
                **common,
            )
        except MissingMasksError as exc:
            raise MissingMasksError(f"{exc} ({why})") from None
        if self.needs_masks and not self.val_set.has_masks:
            raise DataError(f"{data.root}: {why}; " + MASKS_HINT.format(root=data.root))
        if self.val_set.has_masks:
            bank = load_banks(
                cfg.backgrounds.source,
                self.recipe.resize,
                splits=("val",),
                seed=cfg.backgrounds.seed,
                count=cfg.backgrounds.count,
            )["val"]
            # training composites through the public BGAugment module; corrupted validation
            # draws fixed choices from the same bank and recipe (one atlas on the device)
            self.augment = BGAugment.from_bank(bank, self.recipe)
            self.replacer = self.augment.replacer(self.recipe.crop, self.recipe.crop)
        m = self.m_per_class
        needed = math.ceil(data.batch_size / m)
        if self.train_set.num_classes < needed or data.batch_size % m:
            raise ConfigError(
                f"a batch of {data.batch_size} with {m} images per class needs {needed} train "
                f"classes (and batch_size divisible by m); {data.root} has "
                f"{self.train_set.num_classes}"
            )

    def train_dataloader(self) -> DataLoader:
        data = self.config.data
        rank = self.trainer.global_rank if self.trainer is not None else 0
        # Lightning fetches the first batch before it sets the sampler's epoch: start right
        sampler = SeededMPerClassSampler(
            self.train_set.labels,
            self.m_per_class,
            data.batch_size,
            data.batch_size * data.iterations_per_epoch,
            seed=self.config.seed,
            rank=rank,
            epoch=self.trainer.current_epoch if self.trainer is not None else 0,
        )
        return DataLoader(
            self.train_set,
            batch_size=data.batch_size,
            sampler=sampler,
            num_workers=data.num_workers,
            drop_last=True,
            persistent_workers=data.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        data = self.config.data
        dataset = IndexedDataset(self.val_set)
        sampler = None
        if self.trainer is not None and self.trainer.world_size > 1:
            sampler = DistributedSampler(dataset, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=data.batch_size * 2,
            sampler=sampler,
            shuffle=False,
            num_workers=data.num_workers,
            persistent_workers=data.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
