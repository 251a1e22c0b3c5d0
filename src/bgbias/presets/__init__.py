"""Training presets ``<family>/<loss>/<mode>``: tuned settings, kept apart from the datasets.

A *family* is one registry entry (its own module here): the config sections it trains with and
the hyperparameters of each loss. ``cars196``, ``cub200`` and ``sop`` hold the paper's tuned
values (Kobs & Hotho 2022, training setup), ``generated`` the laptop benchmark's, ``folder`` a
short fine-tune of a pretrained backbone on any catalogue folder. The mode is ``base``,
``bgaugment`` (BGAugment; best checkpoint by corrupted val MAP@R) or ``base_corrupted`` (no
BGAugment, selection on corrupted val), as in the paper.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import Registry

MODES = ("base", "bgaugment", "base_corrupted")


@dataclass(frozen=True)
class PresetFamily:
    """The presets ``<name>/<loss>/<mode>`` for every loss in ``loss_params`` and every mode.

    ``training``: config sections (a nested dict) applied before the user's overrides;
    ``loss_params``: per loss, its ``params`` and optionally ``lr`` (the loss's own parameters);
    ``runs_named_after_root``: runs land in ``runs/<data.root's folder name>/<loss>/<mode>``
    (for user folders) instead of ``runs/<preset>``.
    """

    name: str
    dataset: str  # data.dataset: a name in bgbias.data.registry.DATASETS
    description: str
    training: dict[str, Any]
    loss_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs_named_after_root: bool = False


FAMILIES: Registry[PresetFamily] = Registry(
    "preset family",
    providers=("bgbias.presets.paper", "bgbias.presets.generated", "bgbias.presets.folder"),
)


def register(family: PresetFamily) -> PresetFamily:
    return FAMILIES.register(family.name, family)


def preset_names() -> list[str]:
    """Every preset, ``<family>/<loss>/<mode>``."""
    return [
        f"{name}/{loss}/{mode}"
        for name in FAMILIES
        for loss in FAMILIES.get(name).loss_params
        for mode in MODES
    ]


def _family_of(name: str) -> PresetFamily | None:
    family = name.split("/")[0]
    return FAMILIES.get(family) if family in FAMILIES else None


def preset(name: str) -> dict[str, Any]:
    """The preset's settings as a plain nested dict (before overrides)."""
    parts = name.split("/")
    family = _family_of(name)
    if (
        len(parts) != 3
        or family is None
        or parts[1] not in family.loss_params
        or parts[2] not in MODES
    ):
        raise ConfigError(
            f"unknown preset {name!r}; `bgbias list presets` prints all "
            f"{len(preset_names())}, e.g. {preset_names()[0]}"
        )
    _, loss, mode = parts
    settings = copy.deepcopy(family.training)
    settings.setdefault("data", {})["dataset"] = family.dataset
    settings["name"] = name
    settings["loss"] = {"name": loss, **copy.deepcopy(family.loss_params[loss])}
    settings["mode"] = mode
    return settings


def default_output_dir(name: str, data_root: str) -> Path:
    """Where a run of preset ``name`` lands unless ``output_dir`` is set."""
    family = _family_of(name)
    if family is not None and family.runs_named_after_root:
        _, loss, mode = name.split("/")
        return Path("runs") / (Path(data_root).resolve().name or "data") / loss / mode
    return Path("runs") / name
