"""Training on Lightning: a DataModule for (image, mask, label) splits and background banks, a
LightningModule for embedding model + DML loss + BGAugment, and :func:`fit`.

BGAugment runs as a batch step on the training device (PAPER.md section 4). Every epoch the
model is validated on the clean val split and on the same split with backgrounds replaced from
the val bank (fixed draws, so epochs compare); the best checkpoint follows ``config.monitor``.
"""

from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig
from pytorch_metric_learning.samplers import MPerClassSampler
from pytorch_metric_learning.utils import common_functions as pml_common
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from . import __version__
from .augment import BackgroundDraw, BackgroundReplacer
from .config import CORRUPTED_MONITOR, from_dict, to_dict, to_yaml
from .data.backgrounds import load_banks
from .data.datasets import MASKS_HINT, IndexedDataset
from .data.registry import open_split
from .data.transforms import RECIPES, PairedTransform, Recipe
from .errors import BgbiasError, CheckpointError, ConfigError, DataError
from .io import atomic_write, write_text
from .losses import LOSSES, build_loss
from .metrics import retrieval_metrics
from .models import EmbeddingModel, build_model
from .optimizers import SCHEDULERS, build_optimizer

CHECKPOINT_FORMAT = 1


class TrainingDiverged(BgbiasError):
    """The loss became NaN or infinite."""


def resolve_recipe(config: DictConfig) -> Recipe:
    """The run's preprocessing: ``data.recipe`` or the backbone's own."""
    if config.data.recipe:
        return RECIPES.get(config.data.recipe)
    from .backbones import backbone_spec

    return backbone_spec(config.model.backbone).preprocessing()


class SeededMPerClassSampler(Sampler[tuple[int, int]]):
    """pytorch-metric-learning's MPerClassSampler, drawing from its own seed per (epoch, rank).

    Yields ``(index, seed)`` pairs: the dataset draws each sample's crop and flip from its seed,
    so an epoch's data is a function of (seed, epoch, rank) alone, with any number of workers,
    and a resumed run sees what the uninterrupted one did; DDP ranks draw different batches.
    """

    def __init__(
        self,
        labels: np.ndarray,
        m: int,
        batch_size: int,
        length: int,
        seed: int,
        rank: int = 0,
        epoch: int = 0,
    ):
        self.sampler = MPerClassSampler(
            labels, m, batch_size=batch_size, length_before_new_iter=length
        )
        self.seed, self.rank, self.epoch = seed, rank, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        state = np.random.SeedSequence([self.seed, self.epoch, self.rank])
        self.sampler.labels = sorted(self.sampler.labels_to_indices)  # PML shuffles it in place
        saved = pml_common.NUMPY_RANDOM
        pml_common.NUMPY_RANDOM = np.random.RandomState(state.generate_state(4))
        try:
            indices = [int(i) for i in self.sampler]
        finally:
            pml_common.NUMPY_RANDOM = saved
        seeds = state.spawn(1)[0].generate_state(len(indices), dtype=np.uint64) >> np.uint64(1)
        return iter(zip(indices, seeds.tolist(), strict=True))


class MaskedDataModule(L.LightningDataModule):
    """Train/val splits of a dataset (with masks when needed) and the val background bank."""

    def __init__(self, config: DictConfig):
        super().__init__()
        self.config = config
        self.recipe = resolve_recipe(config)
        self.train_set = self.val_set = self.replacer = None

    @property
    def needs_masks(self) -> bool:
        return bool(self.config.bgaugment or self.config.monitor == CORRUPTED_MONITOR)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg, data = self.config, self.config.data
        common = dict(verify=data.verify, cache=data.cache_images, check_sizes=data.check_sizes)
        try:
            self.train_set = open_split(
                data.dataset,
                data.root,
                "train",
                PairedTransform(self.recipe, train=True),
                require_masks=bool(cfg.bgaugment),
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
        except DataError as exc:
            if self.needs_masks and "no masks folder" in str(exc):
                raise DataError(f"{exc} (BGAugment and corrupted validation need masks)") from None
            raise
        if self.needs_masks and not self.train_set.has_masks and cfg.bgaugment:
            raise DataError(
                f"{data.root}: BGAugment needs masks; " + MASKS_HINT.format(root=data.root)
            )
        if self.val_set.has_masks:
            bank = load_banks(
                cfg.backgrounds.source,
                self.recipe.resize,
                splits=("val",),
                seed=cfg.backgrounds.seed,
                count=cfg.backgrounds.count,
            )["val"]
            self.replacer = BackgroundReplacer(bank, self.recipe)
        m = data.m_per_class or LOSSES.get(cfg.loss.name).m_per_class
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
        m = data.m_per_class or LOSSES.get(self.config.loss.name).m_per_class
        # Lightning fetches the first batch before it sets the sampler's epoch: start right
        sampler = SeededMPerClassSampler(
            self.train_set.labels,
            m,
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


class EmbeddingModule(L.LightningModule):
    """Embedding model + DML loss; BGAugment on the device; clean + corrupted validation."""

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
        self.val_draws: BackgroundDraw | None = None
        self._val_outputs: list[tuple[torch.Tensor, ...]] = []
        self._generator: torch.Generator | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is not None and datamodule.replacer is not None:
            self.replacer = datamodule.replacer
            self.val_draws = self.replacer.draw(
                len(datamodule.val_set),
                torch.Generator().manual_seed(self.config.backgrounds.val_seed),
            )
        if self.trainer.world_size > 1:
            # gathers embeddings across ranks; kept out of the module tree (and checkpoints)
            self.__dict__["_distributed_loss"] = DistributedLossWrapper(self.loss_fn)

    def on_train_epoch_start(self) -> None:
        # BGAugment's draws depend on (seed, epoch, rank) only: reproducible and resumable
        state = np.random.SeedSequence([self.config.seed, self.current_epoch, self.global_rank, 1])
        self._generator = torch.Generator().manual_seed(int(state.generate_state(1)[0]))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, masks, labels = batch
        if self.config.bgaugment:
            images = self.replacer(images, masks, self._generator)
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

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []

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
        keep = _first_occurrences(index)
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


def _first_occurrences(index: torch.Tensor) -> torch.Tensor:
    """Positions of each distinct value's first occurrence, in ascending value order."""
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    return order[first]


def resolve_precision(precision: str, accelerator: str) -> str:
    """``"auto"``: bf16 mixed precision where the hardware computes bf16 natively (recent
    NVIDIA GPUs; CPUs with AMX or AVX512-BF16, ~1.6x faster there), else full float32."""
    if precision != "auto":
        return precision
    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    native = [
        getattr(torch.cpu, name, lambda: False)()
        for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    return "bf16-mixed" if any(native) else "32-true"


def run_dir(config: DictConfig) -> Path:
    return Path(config.output_dir)


def fit(config: DictConfig, callbacks: list[L.Callback] | None = None) -> dict[str, Any]:
    """Train one run; returns a summary (best checkpoint, its score, wall time).

    Writes ``<output_dir>/config.yaml``, ``metrics.csv``, ``checkpoints/best.ckpt`` and
    ``checkpoints/last.ckpt``. ``config.resume`` (true or a path) continues a killed run.
    """
    started = time.perf_counter()
    out = run_dir(config)
    resume_from = _resume_checkpoint(config, out)
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    num_classes = datamodule.train_set.num_classes
    if config.loss.num_classes is not None and config.loss.num_classes != num_classes:
        raise ConfigError(
            f"loss.num_classes={config.loss.num_classes} but the train split of "
            f"{config.data.root} has {num_classes} classes"
        )
    if config.monitor == CORRUPTED_MONITOR and datamodule.replacer is None:
        raise DataError(
            f"{config.data.root}: monitoring {config.monitor} needs masks for the "
            f"val split; " + MASKS_HINT.format(root=config.data.root)
        )
    module = EmbeddingModule(to_dict(config), num_classes)
    out.mkdir(parents=True, exist_ok=True)
    if resume_from is None and (out / "metrics.csv").exists():
        (out / "metrics.csv").unlink()  # a fresh run in an old run folder starts a fresh log
    write_text(out / "config.yaml", to_yaml(config))
    checkpoint = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="best",
        monitor=config.monitor,
        mode="max",
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    # Lightning's save_last only refreshes last.ckpt when the best one changes; resuming needs
    # the latest state after every epoch
    latest = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        default_root_dir=out,
        max_epochs=config.trainer.max_epochs,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        strategy=config.trainer.strategy,
        num_nodes=config.trainer.num_nodes,
        precision=resolve_precision(config.trainer.precision, config.trainer.accelerator),
        logger=_loggers(out),
        plugins=[AtomicCheckpointIO()],
        callbacks=[
            checkpoint,
            latest,
            EarlyStopping(monitor=config.monitor, mode="max", patience=config.trainer.patience),
            *(callbacks or []),
        ],
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        log_every_n_steps=config.trainer.log_every_n_steps,
        enable_progress_bar=config.trainer.enable_progress_bar,
        enable_model_summary=False,
    )
    if config.validate_untrained and resume_from is None:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    best = checkpoint.best_model_score
    return {
        "run_dir": str(out),
        "best_checkpoint": checkpoint.best_model_path or None,
        "last_checkpoint": str(out / "checkpoints" / "last.ckpt"),
        "monitor": config.monitor,
        "best_score": float(best) if best is not None else None,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


def _resume_checkpoint(config: DictConfig, out: Path) -> str | None:
    resume = config.resume
    if resume in (False, None, "false", "False", ""):
        return None
    path = (
        out / "checkpoints" / "last.ckpt" if resume in (True, "true", "True") else Path(str(resume))
    )
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    return str(path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a killed run never leaves a
    half-written last.ckpt behind."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_write(path, "wb", durable=True) as handle:
            torch.save(checkpoint, handle)


class _AppendingWriter(ExperimentWriter):
    def __init__(self, log_dir: str):
        super().__init__(log_dir)
        if os.path.isfile(self.metrics_file_path):  # continue the header of a resumed run's log
            with open(self.metrics_file_path, newline="") as handle:
                self.metrics_keys = sorted(next(csv.reader(handle), []))

    def _check_log_dir_exists(self) -> None:
        pass  # Lightning deletes metrics.csv here; a resumed run must append to it instead


class RunCSVLogger(CSVLogger):
    """Lightning's CSVLogger writing ``<run>/metrics.csv``, kept and appended on resume."""

    def __init__(self, run: Path):
        super().__init__(save_dir=str(run), name="", version="")

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def _loggers(out: Path) -> list:
    loggers = [RunCSVLogger(out)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger
    except ImportError:
        return loggers
    return [*loggers, TensorBoardLogger(save_dir=str(out), name="tensorboard", version="")]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> EmbeddingModule:
    """A trained bgbias model from its checkpoint (clear errors for foreign or corrupt files)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle errors, ...
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    hparams = raw.get("hyper_parameters") if isinstance(raw, dict) else None
    if not hparams or "config" not in hparams or "format" not in hparams:
        raise CheckpointError(f"{path}: not a bgbias checkpoint (no bgbias hyperparameters)")
    if hparams["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {hparams['format']} (bgbias "
            f"{hparams.get('bgbias_version')}); this bgbias {__version__} "
            f"reads format {CHECKPOINT_FORMAT}"
        )
    config = dict(hparams["config"])
    config["model"] = {**config["model"], "pretrained": False}  # weights come from the checkpoint
    module = EmbeddingModule(config, hparams["num_classes"])
    module.load_state_dict(raw["state_dict"])
    module.config = from_dict(hparams["config"])
    return module.eval()
