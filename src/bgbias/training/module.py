"""The LightningModule: embedding model + DML loss, BGAugment on the device, and clean +
corrupted validation (PAPER.md sections 4-5)."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper

from .. import __version__
from ..augment import BackgroundDraw, BackgroundReplacer, BGAugment
from ..config import from_dict, uses_bgaugment
from ..errors import BgbiasError
from ..losses import build_loss
from ..metrics import retrieval_metrics
from ..models import EmbeddingModel, build_model
from ..optimizers import SCHEDULERS, build_optimizer
from ..runs import CHECKPOINT_FORMAT


class TrainingDiverged(BgbiasError):
    """The loss became NaN or infinite."""


class EmbeddingModule(L.LightningModule):
    """Embedding model + DML loss; BGAugment on the device; clean + corrupted validation.

    Every epoch the model is validated on the clean val split and on the same split with
    backgrounds replaced from the val bank: one fixed draw reused at every validation, or with
    ``backgrounds.val_redraw`` a fresh draw per epoch (the reference's), a function of
    (val_seed, epoch) alone, so a resumed run and every DDP rank make the same draws.
    """

    augment: BGAugment | None  # training's BGAugment (the public module), from the datamodule

    def __init__(self, config: dict[str, Any], num_classes: int):
        super().__init__()
        self.save_hyperparameters(
            {
                "config": config,
                "num_classes": num_classes,
                "format": CHECKPOINT_FORMAT,
                "bgbias_version": __version__,
            }
        )
        self.config = from_dict(config)
        cfg = self.config
        self.model: EmbeddingModel = build_model(
            cfg.model.backbone,
            cfg.model.pretrained,
            cfg.model.embedding_size,
            cfg.model.weights,
            cfg.model.freeze_batchnorm,
        )
        self.loss_fn = build_loss(
            cfg.loss.name, dict(cfg.loss.params), num_classes, cfg.model.embedding_size
        )
        self.replacer: BackgroundReplacer | None = None
        self.__dict__["augment"] = None  # BGAugment, set by setup (see there)
        self.val_draws: BackgroundDraw | None = None
        self._val_size = 0
        self._val_outputs: list[tuple[torch.Tensor, ...]] = []
        self._generator: torch.Generator | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is not None and datamodule.replacer is not None:
            # no weights: kept out of the module tree (summary, checkpoints, device moves)
            self.__dict__["augment"] = datamodule.augment
            self.replacer = datamodule.replacer
            self._val_size = len(datamodule.val_set)
            self.val_draws = self.draw_val_backgrounds(0)
        if self.trainer.world_size > 1:
            # gathers embeddings across ranks; kept out of the module tree (and checkpoints)
            self.__dict__["_distributed_loss"] = DistributedLossWrapper(self.loss_fn)

    def on_train_epoch_start(self) -> None:
        # BGAugment's draws depend on (seed, epoch, rank) only: reproducible and resumable
        state = np.random.SeedSequence([self.config.seed, self.current_epoch, self.global_rank, 1])
        self._generator = torch.Generator().manual_seed(int(state.generate_state(1)[0]))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, masks, labels = batch
        if uses_bgaugment(self.config):
            images = self.augment(images, masks, self._generator)
        embeddings = self.model(images)
        loss_fn = self.__dict__.get("_distributed_loss", self.loss_fn)
        # the loss in float32 under mixed precision: its exponentials amplify bf16 rounding
        with torch.autocast(self.device.type, enabled=False):
            loss = loss_fn(embeddings.float(), labels)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss {self.config.loss.name!r} became {loss.item()} at step {self.global_step} "
                f"(epoch {self.current_epoch}); training stopped, the last good checkpoint is kept"
            )
        self.log(
            "train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(labels)
        )
        return loss

    def draw_val_backgrounds(self, epoch: int) -> BackgroundDraw:
        """The corrupted val set's backgrounds for ``epoch`` (the same every epoch unless
        ``val_redraw``)."""
        seed = self.config.backgrounds.val_seed
        if self.config.backgrounds.val_redraw:
            seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
        return self.replacer.draw(self._val_size, torch.Generator().manual_seed(seed))

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []
        if self.replacer is not None and self.config.backgrounds.val_redraw:
            self.val_draws = self.draw_val_backgrounds(self.current_epoch)

    def validation_step(self, batch, batch_idx: int) -> None:
        images, masks, labels, index = batch
        clean = self.model(images).float()
        corrupted = None
        if self.replacer is not None:
            corrupted = self.model(self.replacer(images, masks, draw=self.val_draws[index])).float()
        self._val_outputs.append((index, labels, clean, corrupted))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        index = torch.cat([o[0] for o in self._val_outputs])
        labels = torch.cat([o[1] for o in self._val_outputs])
        sets = {"clean": torch.cat([o[2] for o in self._val_outputs])}
        if self._val_outputs[0][3] is not None:
            sets["corrupted"] = torch.cat([o[3] for o in self._val_outputs])
        self._val_outputs = []
        if self.trainer.world_size > 1:
            index, labels, sets = self._gather(index, labels, sets)
        for name, embeddings in sets.items():
            for metric, value in retrieval_metrics(embeddings.float(), labels).items():
                self.log(
                    f"val/{name}/{metric}",
                    value,
                    prog_bar=metric == "map_at_r",
                    sync_dist=False,
                    rank_zero_only=False,
                )

    def _gather(self, index, labels, sets):
        """All ranks' outputs, each item once (DistributedSampler pads with repeats)."""
        index = self.all_gather(index).flatten(0, 1)
        labels = self.all_gather(labels).flatten(0, 1)
        sets = {k: self.all_gather(v).flatten(0, 1) for k, v in sets.items()}
        keep = first_occurrences(index)
        return index[keep], labels[keep], {k: v[keep] for k, v in sets.items()}

    def configure_optimizers(self):
        cfg = self.config
        loss_params = [p for p in self.loss_fn.parameters() if p.requires_grad]
        optimizer = build_optimizer(
            cfg.optimizer.name,
            self.model.parameters(),
            cfg.optimizer.lr,
            cfg.optimizer.weight_decay,
            cfg.optimizer.momentum,
            loss_params,
            cfg.loss.lr,
        )
        total_steps = cfg.trainer.max_epochs * cfg.data.iterations_per_epoch
        scheduler = SCHEDULERS.get(cfg.optimizer.scheduler)(optimizer, total_steps)
        if scheduler is None:
            return {"optimizer": optimizer}
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def first_occurrences(index: torch.Tensor) -> torch.Tensor:
    """Positions of each distinct value's first occurrence, in ascending value order."""
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    return order[first]
