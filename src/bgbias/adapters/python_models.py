"""``python:<module>:<factory>``: a model made by the user's own code.

``factory()`` (no arguments) returns an ``nn.Module`` mapping normalised (B, 3, H, W) images to
(B, D) embeddings, optionally as ``(module, preprocessing)`` where preprocessing is a
:class:`bgbias.data.transforms.Recipe` or a dict with ``input_size``, ``mean``, ``std`` (0-1
units) and ``crop_pct``; or a ready :class:`Embedder`. ``<module>`` is an importable module
name or a path to a ``.py`` file.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch import nn

from ..data.transforms import Recipe
from ..errors import ConfigError
from .base import (
    AdapterForm,
    AdapterOptions,
    Embedder,
    TorchEmbedder,
    external_recipe,
    register_form,
)

PREPROCESSING_KEYS = {"input_size", "mean", "std", "crop_pct"}


def _import(name: str, spec: str) -> ModuleType:
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"{spec}: file {path} not found")
        module_spec = importlib.util.spec_from_file_location(f"bgbias_user_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        try:
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything
            raise ConfigError(f"{spec}: importing {path} failed ({_describe(exc)})") from None
        return module
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{spec}: cannot import module {name!r} ({exc})") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module may raise anything
        raise ConfigError(f"{spec}: importing {name} failed ({_describe(exc)})") from None


def _describe(exc: BaseException) -> str:
    """One line for an exception of the user's code (sys.exit(3) included)."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_python(rest: str, options: AdapterOptions) -> Embedder:
    spec = f"python:{rest}"
    module_name, colon, factory_name = rest.rpartition(":")
    if not colon or not module_name or not factory_name:
        raise ConfigError(f"{spec}: use python:<module or file.py>:<factory>")
    factory = getattr(_import(module_name, spec), factory_name, None)
    if not callable(factory):
        raise ConfigError(f"{spec}: {module_name} has no callable {factory_name!r}")
    try:
        made = factory()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything
        raise ConfigError(f"{spec}: {factory_name}() failed ({_describe(exc)})") from None
    if isinstance(made, Embedder):
        return made
    model, preprocessing = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{spec}: the factory must return an nn.Module (or (module, preprocessing), or an "
            f"Embedder), got {type(model).__name__}"
        )
    if isinstance(preprocessing, Recipe):
        recipe = preprocessing
    elif preprocessing is None or isinstance(preprocessing, dict):
        unknown = set(preprocessing or {}) - PREPROCESSING_KEYS
        if unknown:
            raise ConfigError(
                f"{spec}: unknown preprocessing key(s) {sorted(unknown)}; "
                f"known: {sorted(PREPROCESSING_KEYS)}"
            )
        recipe = external_recipe(f"python:{factory_name}", options, **(preprocessing or {}))
    else:
        raise ConfigError(
            f"{spec}: preprocessing must be a Recipe or a dict, got {type(preprocessing).__name__}"
        )
    return TorchEmbedder(
        model, spec, "python", recipe, label=f"{module_name}:{factory_name}", details={}
    )


register_form(
    AdapterForm(
        "python",
        load_python,
        "python:<module>:<factory>",
        "your own code: factory() returns an nn.Module (and optionally its preprocessing)",
        prefix="python",
    )
)
