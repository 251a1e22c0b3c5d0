"""``fit(config)``: one training run on Lightning, from a validated config to a run folder."""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from ..config import monitor_key, to_dict, to_yaml, validate
from ..data.background_sets import resolve_source
from ..errors import BgbiasError, ConfigError
from ..io import write_text
from ..progress import LogLines, bars_enabled, log_lines_enabled
from ..verbosity import apply_library_levels
from .datamodule import MaskedDataModule
from .module import EmbeddingModule
from .run_folder import AtomicCheckpointIO, claimed_run_folder, loggers, resume_point


class TrainingStopped(BgbiasError):
    """The training was told to stop (SIGTERM) before it finished; its last checkpoint is kept."""


class LogProgress(L.Callback):
    """Training progress as plain lines (steps, rate, ETA) when stderr is not a terminal, where
    Lightning's bar would write carriage-return noise or nothing."""

    def __init__(self) -> None:
        self.lines: LogLines | None = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        total = trainer.estimated_stepping_batches  # inf for an endless loader
        remaining = int(total - trainer.global_step) if math.isfinite(total) else None
        self.lines = LogLines(remaining, "training", unit="step")

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.lines is not None:
            self.lines.update(1)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.lines is not None:
            self.lines.close()


def resolve_precision(precision: str, accelerator: str) -> str:
    """``"auto"``: bf16 mixed precision where the hardware computes bf16 natively (recent
    NVIDIA GPUs; CPUs with AMX or AVX512-BF16), else full float32."""
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


def fit(config: DictConfig, callbacks: list[L.Callback] | None = None) -> dict[str, Any]:
    """Train one run; returns a summary (best checkpoint, its score, wall time).

    Writes ``<output_dir>/config.yaml``, ``metrics.csv``, ``checkpoints/best.ckpt`` and
    ``checkpoints/last.ckpt``. ``config.resume`` (true or a path) continues a killed run;
    ``config.overwrite`` replaces a previous run in the folder. The config, the resume
    checkpoint and the data are all checked before the run folder is touched.
    """
    started = time.perf_counter()
    validate(config)
    out = Path(config.output_dir)
    resumed = resume_point(config.resume, out)
    resume_from, resume_step = resumed if resumed is not None else (None, None)
    resolve_source(config.backgrounds.source)  # a photo set not fetched stops here, at once
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    num_classes = datamodule.train_set.num_classes
    if config.loss.num_classes is not None and config.loss.num_classes != num_classes:
        raise ConfigError(
            f"loss.num_classes={config.loss.num_classes} but the train split of "
            f"{config.data.root} has {num_classes} classes"
        )
    module = EmbeddingModule(to_dict(config), num_classes)
    monitor = monitor_key(config)
    with claimed_run_folder(out, resume_from is not None, config.overwrite):
        write_text(out / "config.yaml", to_yaml(config))
        checkpoint = ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="best",
            monitor=monitor,
            mode="max",
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        # Lightning's save_last only refreshes last.ckpt when the best one changes; resuming
        # needs the latest state after every epoch
        latest = ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        )
        progress = config.trainer.enable_progress_bar
        apply_library_levels()  # Lightning's info lines (GPU available, tips...) only with -v
        trainer = L.Trainer(
            default_root_dir=out,
            max_epochs=config.trainer.max_epochs,
            accelerator=config.trainer.accelerator,
            devices=config.trainer.devices,
            strategy=config.trainer.strategy,
            num_nodes=config.trainer.num_nodes,
            precision=resolve_precision(config.trainer.precision, config.trainer.accelerator),
            logger=loggers(out, resume_step),
            plugins=[AtomicCheckpointIO()],
            callbacks=[
                checkpoint,
                latest,
                EarlyStopping(monitor=monitor, mode="max", patience=config.trainer.patience),
                *([LogProgress()] if progress is None and log_lines_enabled() else []),
                *(callbacks or []),
            ],
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            log_every_n_steps=config.trainer.log_every_n_steps,
            enable_progress_bar=bars_enabled() if progress is None else progress,
            enable_model_summary=False,
        )
        try:
            if config.validate_untrained and resume_from is None:
                trainer.validate(module, datamodule=datamodule, verbose=False)
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        except SIGTERMException:  # Lightning stops gracefully, but as a SystemExit(0)
            raise TrainingStopped(
                f"{out}: training stopped by SIGTERM at step {trainer.global_step}; continue "
                "it with resume=true"
            ) from None
        except SystemExit:
            if not trainer.interrupted:
                raise
            # Lightning answers Ctrl-C with sys.exit(1) and leaves SIGINT ignored: give the
            # caller a KeyboardInterrupt (exit 130) and the interrupt key back
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt from None
    best = checkpoint.best_model_score
    return {
        "run_dir": str(out),
        "best_checkpoint": checkpoint.best_model_path or None,
        "last_checkpoint": str(out / "checkpoints" / "last.ckpt"),
        "monitor": monitor,
        "best_score": float(best) if best is not None else None,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
