"""Run configuration: typed sections, composed presets, dotted command-line overrides.

A preset is ``<dataset>/<loss>/<mode>``: the dataset section (data, model, optimiser, trainer),
the loss with that dataset's tuned hyperparameters (PAPER.md section 5), and the mode
(``base``, ``bgaugment``, ``base_corrupted``). ``cars196``, ``cub200`` and ``sop`` are the
paper's 30 experiments (+ ``base_corrupted``); ``generated`` runs on the generated benchmark.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError

CLEAN_MONITOR = "val/clean/map_at_r"
CORRUPTED_MONITOR = "val/corrupted/map_at_r"


@dataclass
class DataConfig:
    dataset: str = "folder"  # a name in bgbias.data.registry.DATASETS
    root: str = "data"
    recipe: str | None = None  # preprocessing; default: the backbone's
    batch_size: int = 32
    m_per_class: int | None = None  # default: the loss's (4 pair losses, 1 classification)
    iterations_per_epoch: int = 100
    num_workers: int = 4
    cache_images: bool = False  # keep decoded images in memory (small datasets)
    verify: str = "header"  # none | header | full, see FolderDataset.open
    check_sizes: bool = True  # a named dataset must have the paper's class counts


@dataclass
class BackgroundConfig:
    source: str = "procedural"  # or a folder with val/ and test/ photo folders
    count: int = 100  # procedural backgrounds per split
    seed: int = 0
    val_seed: int = 1234  # fixed draws of the corrupted validation set


@dataclass
class ModelConfig:
    backbone: str = "bninception"
    pretrained: bool = True
    weights: str | None = None
    embedding_size: int = 128
    freeze_batchnorm: bool | None = None  # default: = pretrained


@dataclass
class LossConfig:
    name: str = "contrastive"
    params: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None  # lr_loss: learning rate of the loss's own parameters
    num_classes: int | None = None  # default: the train split's class count


@dataclass
class OptimizerConfig:
    name: str = "rmsprop"
    lr: float = 1e-6
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "constant"  # or "cosine": decays every lr to 0 over max_epochs


@dataclass
class TrainerConfig:
    max_epochs: int = 1000
    patience: int = 15
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"  # any Lightning precision, or "auto" (bf16 where native)
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True


@dataclass
class TrainConfig:
    name: str = "custom"
    seed: int = 42
    bgaugment: bool = False
    monitor: str = CLEAN_MONITOR
    validate_untrained: bool = True
    output_dir: str | None = None  # default: runs/<name>
    resume: Any = False  # true: the run's last checkpoint; or a checkpoint path
    data: DataConfig = field(default_factory=DataConfig)
    backgrounds: BackgroundConfig = field(default_factory=BackgroundConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


# --- presets ---------------------------------------------------------------------------------

_PAPER_OPTIMIZER = {"name": "rmsprop", "lr": 1e-6, "weight_decay": 1e-4, "momentum": 0.9}
_PAPER_MODEL = {"backbone": "bninception", "pretrained": True, "embedding_size": 128}

DATASET_PRESETS: dict[str, dict[str, Any]] = {
    "cars196": {
        "data": {"dataset": "cars196", "root": "data/cars196"},
        "model": _PAPER_MODEL,
        "optimizer": _PAPER_OPTIMIZER,
    },
    "cub200": {
        "data": {"dataset": "cub200", "root": "data/cub200"},
        "model": _PAPER_MODEL,
        "optimizer": _PAPER_OPTIMIZER,
    },
    "sop": {
        "data": {"dataset": "sop", "root": "data/sop"},
        "model": _PAPER_MODEL,
        "optimizer": _PAPER_OPTIMIZER,
    },
    "generated": {
        "data": {
            "dataset": "generated",
            "root": "data/generated",
            "num_workers": 0,
            "cache_images": True,
        },
        "model": {"backbone": "small_cnn", "pretrained": False, "embedding_size": 128},
        "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "cosine"},
        "trainer": {"max_epochs": 10},
    },
}

# PAPER.md section 5: tuned per dataset; classification losses carry their lr_loss.
LOSS_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cars196": {
        "contrastive": {"params": {"pos_margin": 0.2652, "neg_margin": 0.5409}},
        "triplet": {"params": {"margin": 0.1190}},
        "multi_similarity": {"params": {"alpha": 14.359, "beta": 75.835, "base": 0.6616}},
        "arcface": {"params": {"margin": 20.522, "scale": 49.502}, "lr": 7.3985e-6},
        "normalized_softmax": {"params": {"temperature": 0.08863}, "lr": 1.1046e-2},
    },
    "cub200": {
        "contrastive": {"params": {"pos_margin": -0.2000, "neg_margin": 0.3841}},
        "triplet": {"params": {"margin": 0.0961}},
        "multi_similarity": {"params": {"alpha": 0.0100, "beta": 50.602, "base": 0.5625}},
        "arcface": {"params": {"margin": 23.226, "scale": 100.0}, "lr": 5.1384e-3},
        "normalized_softmax": {"params": {"temperature": 0.10875}, "lr": 4.4689e-3},
    },
    "sop": {
        "contrastive": {"params": {"pos_margin": 0.2850, "neg_margin": 0.5130}},
        "triplet": {"params": {"margin": 0.0452}},
        "multi_similarity": {"params": {"alpha": 8.4925, "beta": 57.389, "base": 0.4167}},
        "arcface": {"params": {"margin": 18.632, "scale": 220.36}, "lr": 2.0187e-3},
        "normalized_softmax": {"params": {"temperature": 0.06306}, "lr": 5.4683e-4},
    },
    # the generated benchmark: pytorch-metric-learning's defaults, lr_loss = the model's lr
    "generated": {
        "contrastive": {"params": {"pos_margin": 0.0, "neg_margin": 1.0}},
        "triplet": {"params": {"margin": 0.05}},
        "multi_similarity": {"params": {"alpha": 2.0, "beta": 50.0, "base": 0.5}},
        "arcface": {"params": {"margin": 28.6, "scale": 64.0}, "lr": 1e-3},
        "normalized_softmax": {"params": {"temperature": 0.05}, "lr": 1e-3},
    },
}

MODE_PRESETS: dict[str, dict[str, Any]] = {
    "base": {"bgaugment": False, "monitor": CLEAN_MONITOR},
    "bgaugment": {"bgaugment": True, "monitor": CORRUPTED_MONITOR},
    "base_corrupted": {"bgaugment": False, "monitor": CORRUPTED_MONITOR},
}


def preset_names() -> list[str]:
    return [
        f"{d}/{loss}/{mode}"
        for d in DATASET_PRESETS
        for loss in LOSS_PRESETS[d]
        for mode in MODE_PRESETS
    ]


def preset(name: str) -> dict[str, Any]:
    """The preset's settings as a plain nested dict (before overrides)."""
    parts = name.split("/")
    if (
        len(parts) != 3
        or parts[0] not in DATASET_PRESETS
        or parts[1] not in LOSS_PRESETS.get(parts[0], {})
        or parts[2] not in MODE_PRESETS
    ):
        raise ConfigError(
            f"unknown preset {name!r}; `bgbias train --list` prints all "
            f"{len(preset_names())}, e.g. {preset_names()[0]}"
        )
    dataset, loss, mode = parts
    settings = copy.deepcopy(DATASET_PRESETS[dataset])
    settings["name"] = name
    settings["loss"] = {"name": loss, **copy.deepcopy(LOSS_PRESETS[dataset][loss])}
    settings.update(copy.deepcopy(MODE_PRESETS[mode]))
    return settings


def compose(
    preset_name: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: str | Path | None = None,
) -> DictConfig:
    """Typed config = defaults <- preset (or a saved ``base`` config.yaml) <- ``key=value``
    overrides (dotted keys)."""
    config = OmegaConf.structured(TrainConfig)
    try:
        if base is not None:
            if not Path(base).is_file():
                raise ConfigError(f"{base}: config file not found")
            config = OmegaConf.merge(config, OmegaConf.load(base))
        if preset_name is not None:
            config = OmegaConf.merge(config, preset(preset_name))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must be key=value, got {bad[0]!r}")
        config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as exc:
        raise ConfigError(_omegaconf_message(exc)) from None
    if config.output_dir is None:
        config.output_dir = str(Path("runs") / config.name)
    return config


def from_dict(values: dict[str, Any]) -> DictConfig:
    """A typed config from a saved dict (a checkpoint's or config.yaml's)."""
    try:
        return OmegaConf.merge(OmegaConf.structured(TrainConfig), values)
    except OmegaConfBaseException as exc:
        raise ConfigError(_omegaconf_message(exc)) from None


def to_dict(config: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(config, resolve=True)


def to_yaml(config: DictConfig) -> str:
    return OmegaConf.to_yaml(config)


def _omegaconf_message(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    text = str(exc).splitlines()[0]
    return f"config key {key!r}: {text}" if key else text
