"""Run configuration: typed sections, composed presets, dotted command-line overrides.

A preset is ``<family>/<loss>/<mode>`` (:mod:`bgbias.presets`): the family's training settings
and the loss's tuned hyperparameters, and the mode: ``base``, ``bgaugment`` (BGAugment, best
checkpoint by corrupted val MAP@R) or ``base_corrupted`` (no BGAugment, selection on corrupted
val). ``cars196``, ``cub200`` and ``sop`` are the paper's 30 experiments (+ ``base_corrupted``);
``generated`` runs on the generated benchmark; ``folder`` fine-tunes a pretrained backbone on any
catalogue folder. :func:`compose` validates the whole config before anything touches disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .data.registry import DATASETS
from .errors import ConfigError
from .presets import MODES, default_output_dir, preset

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
    # "procedural", a named photo set ("paper": `bgbias backgrounds fetch paper`), or a folder
    # with val/ and test/ photo folders
    source: str = "procedural"
    count: int = 100  # procedural backgrounds per split
    seed: int = 0
    val_seed: int = 1234  # seed of the corrupted validation set's draws
    # false: one fixed draw reused at every validation; true: fresh draws at every validation
    # (the reference's), seeded by (val_seed, epoch) so a resumed run makes the same draws
    val_redraw: bool = False


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
    enable_progress_bar: bool | None = None  # default: when stderr is a terminal


@dataclass
class TrainConfig:
    name: str = "custom"
    seed: int = 42
    mode: str = "base"  # base | bgaugment | base_corrupted
    validate_untrained: bool = True
    output_dir: str | None = None  # default: runs/<name>
    resume: Any = False  # true: the run's last checkpoint; or a checkpoint path
    overwrite: bool = False  # replace a previous run in output_dir (else refused)
    data: DataConfig = field(default_factory=DataConfig)
    backgrounds: BackgroundConfig = field(default_factory=BackgroundConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


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
            config = OmegaConf.merge(config, _read_config_file(Path(base)))
        if preset_name is not None:
            config = OmegaConf.merge(config, preset(preset_name))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must be key=value, got {bad[0]!r}")
        config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as exc:
        raise ConfigError(_omegaconf_message(exc)) from None
    if config.output_dir is None:
        config.output_dir = str(default_output_dir(config.name, config.data.root))
    return validate(config)


def _read_config_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        where = getattr(exc, "problem_mark", None)  # YAML's own position, 0-based
        line = f":{where.line + 1}" if where is not None else ""
        reason = getattr(exc, "problem", None) or getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{path}{line}: not a readable YAML config ({reason})") from None
    if not isinstance(saved, dict):
        raise ConfigError(
            f"{path}: a config file maps keys to values (like a run's config.yaml), "
            f"not a {type(saved).__name__}"
        )
    return saved


def from_dict(values: dict[str, Any]) -> DictConfig:
    """A typed config from a saved dict (a checkpoint's or config.yaml's)."""
    try:
        return OmegaConf.merge(OmegaConf.structured(TrainConfig), values)
    except OmegaConfBaseException as exc:
        raise ConfigError(_omegaconf_message(exc)) from None


def uses_bgaugment(config: DictConfig) -> bool:
    return config.mode == "bgaugment"


def monitor_key(config: DictConfig) -> str:
    """The validation metric that picks the best checkpoint (Kobs & Hotho 2022, training setup)."""
    return CLEAN_MONITOR if config.mode == "base" else CORRUPTED_MONITOR


VERIFY_LEVELS = ("none", "header", "full")
# far above any metric learning embedding (the paper's is 512), far below a head that would
# not fit in memory (10^8 x 1024 floats is 400 GB)
MAX_EMBEDDING_SIZE = 65536
PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")


def validate(config: DictConfig) -> DictConfig:
    """Check every enum-like field and every count before anything touches disk; one
    ConfigError lists every bad key."""
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    from .backbones import backbone_spec
    from .data.transforms import RECIPES
    from .losses import LOSSES
    from .optimizers import OPTIMIZERS, SCHEDULERS

    problems: list[str] = []

    def choice(key: str, value: Any, valid) -> None:
        if value not in valid:
            problems.append(f"{key}={value!r} is not one of {', '.join(map(str, valid))}")

    def at_least(key: str, value: Any, minimum: float, optional: bool = False) -> None:
        if not (optional and value is None) and (value is None or value < minimum):
            problems.append(f"{key}={value!r} must be >= {minimum}")

    def positive(key: str, value: Any, optional: bool = False) -> None:
        if not (optional and value is None) and (value is None or value <= 0):
            problems.append(f"{key}={value!r} must be > 0")

    data, trainer = config.data, config.trainer
    choice("mode", config.mode, MODES)
    choice("data.dataset", data.dataset, DATASETS.names())
    if data.recipe is not None:
        choice("data.recipe", data.recipe, RECIPES.names())
    choice("data.verify", data.verify, VERIFY_LEVELS)
    at_least("data.batch_size", data.batch_size, 1)
    at_least("data.m_per_class", data.m_per_class, 1, optional=True)
    at_least("data.iterations_per_epoch", data.iterations_per_epoch, 1)
    at_least("data.num_workers", data.num_workers, 0)
    at_least("backgrounds.count", config.backgrounds.count, 1)
    try:
        backbone_spec(config.model.backbone)
    except ConfigError as exc:
        problems.append(f"model.backbone: {exc}")
    at_least("model.embedding_size", config.model.embedding_size, 0)
    if (config.model.embedding_size or 0) > MAX_EMBEDDING_SIZE:
        problems.append(
            f"model.embedding_size={config.model.embedding_size} must be <= "
            f"{MAX_EMBEDDING_SIZE} (0: no head, the backbone's own features)"
        )
    choice("loss.name", config.loss.name, LOSSES.names())
    positive("loss.lr", config.loss.lr, optional=True)
    at_least("loss.num_classes", config.loss.num_classes, 1, optional=True)
    choice("optimizer.name", config.optimizer.name, OPTIMIZERS.names())
    choice("optimizer.scheduler", config.optimizer.scheduler, SCHEDULERS.names())
    positive("optimizer.lr", config.optimizer.lr)
    at_least("optimizer.weight_decay", config.optimizer.weight_decay, 0)
    at_least("trainer.max_epochs", trainer.max_epochs, 1)
    at_least("trainer.patience", trainer.patience, 1)
    at_least("trainer.num_nodes", trainer.num_nodes, 1)
    at_least("trainer.log_every_n_steps", trainer.log_every_n_steps, 1)
    choice("trainer.precision", trainer.precision, PRECISIONS)
    choice("trainer.accelerator", trainer.accelerator, ["auto", "gpu", *AcceleratorRegistry])
    choice("trainer.strategy", trainer.strategy, ["auto", *StrategyRegistry])
    devices = trainer.devices
    if not (devices == "auto" or devices == -1 or _device_count_ok(devices)):
        problems.append(f"trainer.devices={devices!r} must be >= 1, -1, 'auto' or a list of ids")
    if problems:
        raise ConfigError("bad config: " + "; ".join(problems))
    return config


def _device_count_ok(devices: Any) -> bool:
    if isinstance(devices, int):
        return devices >= 1
    if isinstance(devices, str):
        return devices.isdigit() and int(devices) >= 1 or "," in devices
    return len(devices) >= 1 and all(isinstance(d, int) and d >= 0 for d in devices)


def to_dict(config: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(config, resolve=True)


def to_yaml(config: DictConfig) -> str:
    return OmegaConf.to_yaml(config)


def _omegaconf_message(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    text = str(exc).splitlines()[0]
    return f"config key {key!r}: {text}" if key else text
