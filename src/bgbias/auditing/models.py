"""The models :func:`bgbias.audit` takes, as Embedders: names (the adapter registry's forms),
``nn.Module``s, plain callables, ready Embedders; one, a list, or a dict name -> model; each
optionally as ``(model, preprocessing)`` with preprocessing a dict (``input_size``, ``mean``,
``std``: 0-1 units, RGB; ``crop_pct``, as timm's data config) or a Recipe.

A module or callable is named by the dict key, else by its class (a function: its name), with
``-2``, ``-3``... when repeated. A user's module is put in eval mode and moved to the audit's
device while it is audited; :func:`restored` gives it back as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..adapters import AdapterOptions, Embedder, TorchEmbedder, external_recipe, load_embedder
from ..data.transforms import Recipe
from ..errors import ConfigError

# what one model may be given as; ``(model, preprocessing)`` pairs too
ModelLike = str | Embedder | nn.Module | Callable[[torch.Tensor], Any]
MODULE_KEYS = ("input_size", "mean", "std", "crop_pct")
NAMED_KEYS = ("input_size", "mean", "std")  # a named model's form sets its own crop


class CallableEmbedder(Embedder):
    """A plain callable (B, 3, H, W) normalised images on the audit's device -> (B, D)
    embeddings (a tensor or an array). bgbias cannot differentiate it: no attention score."""

    def __init__(self, function: Callable[[torch.Tensor], Any], name: str, recipe: Recipe):
        super().__init__(
            name,
            "callable",
            recipe,
            details={
                "callable": _qualified(function),
                "no_gradients": "a plain callable; pass an nn.Module for gradients",
            },
        )
        self.function = function

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.function(images.to(self.device))
        return torch.from_numpy(np.asarray(out)) if isinstance(out, np.ndarray) else out


class ModuleEmbedder(TorchEmbedder):
    """A user's ``nn.Module``; remembers its training mode and device, which the audit changes
    (eval mode, the audit's device) and :func:`restored` gives back."""

    def __init__(self, module: nn.Module, name: str, recipe: Recipe):
        tensors = [*module.parameters(), *module.buffers()]
        self.was_training = module.training
        self.was_on = tensors[0].device if tensors else None
        # Embedder's, not TorchEmbedder's, constructor: that one sets eval mode at once, and
        # a user's module is left as it is until the audit computes (a failed plan leaves it)
        Embedder.__init__(self, name, "module", recipe, details={"class": _qualified(module)})
        self._module = module

    def to(self, device: torch.device | str) -> ModuleEmbedder:
        super().to(device)
        self._module.eval()
        return self


def _qualified(obj: Any) -> str:
    kind = obj if inspect.isroutine(obj) else type(obj)
    return f"{getattr(kind, '__module__', None) or '?'}.{getattr(kind, '__qualname__', '?')}"


def _default_name(model: Any) -> str:
    if isinstance(model, str):
        return model
    if isinstance(model, Embedder):
        return model.spec
    if not isinstance(model, nn.Module) and hasattr(model, "__name__"):
        return model.__name__  # a function
    return type(model).__name__


def _preprocessing(
    name: str, given: Mapping[str, Any] | Recipe | None, defaults: Mapping[str, Any], keys
) -> dict[str, Any] | Recipe:
    """The model's preprocessing: its own dict over the audit-wide ``defaults`` (or a Recipe)."""
    if isinstance(given, Recipe):
        return given
    if given is not None and not isinstance(given, Mapping):
        raise ConfigError(
            f"model {name!r}: preprocessing must be a dict or a Recipe, got {type(given).__name__}"
        )
    unknown = sorted(set(given or {}) - set(keys))
    if unknown:
        raise ConfigError(f"model {name!r}: unknown preprocessing key(s) {unknown}; known: {keys}")
    merged = {k: v for k, v in defaults.items() if v is not None} | dict(given or {})
    for key in ("mean", "std"):
        if key in merged:
            merged[key] = three_numbers(f"model {name!r}: {key}", merged[key])
    return merged


def three_numbers(what: str, values: Any) -> tuple[float, float, float]:
    """``values`` as 3 floats (a mean or std, 0-1 units, RGB); else a ConfigError on ``what``."""
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3:
        raise ConfigError(f"{what} must be 3 numbers (0-1, RGB), got {values!r}")
    return numbers


def one_embedder(
    name: str,
    model: ModelLike,
    preprocessing: Mapping[str, Any] | Recipe | None,
    defaults: Mapping[str, Any],
    options: AdapterOptions,
) -> str | Embedder:
    """``model`` as the audit takes it: a name stays a name when nothing overrides its
    preprocessing (the plan loads it), anything else becomes an Embedder called ``name``."""
    if isinstance(model, str):
        if isinstance(preprocessing, Recipe):
            raise ConfigError(f"model {model!r}: a named model takes a preprocessing dict")
        own = _preprocessing(model, preprocessing, {}, NAMED_KEYS)
        if not own and name == model:
            return model
        embedder = load_embedder(model, dataclasses.replace(options, **own))
        if name != model:  # named by a dict key: that name everywhere, the form kept
            embedder.details["given_as"] = model
            embedder.spec = embedder.label = name
        return embedder
    if isinstance(model, Embedder):
        if preprocessing is not None:
            raise ConfigError(f"model {name!r}: an Embedder carries its own preprocessing")
        if name != model.spec:  # named by a dict key
            model.details["given_as"] = model.spec
            model.spec = model.label = name
        return model
    if not callable(model):
        raise ConfigError(
            f"model {name!r}: expected a model name, an nn.Module, a callable images -> "
            f"embeddings or an Embedder, got {type(model).__name__}"
        )
    recipe = _preprocessing(name, preprocessing, defaults, MODULE_KEYS)
    if not isinstance(recipe, Recipe):
        recipe = external_recipe(name, AdapterOptions(), **recipe)
    if isinstance(model, nn.Module):
        return ModuleEmbedder(model, name, recipe)
    return CallableEmbedder(model, name, recipe)


def as_embedders(
    models: ModelLike | tuple | Sequence | Mapping[str, Any],
    defaults: Mapping[str, Any],
    options: AdapterOptions,
) -> list[str | Embedder]:
    """Every model of ``models`` (one, a list, or a dict name -> model; each maybe a
    ``(model, preprocessing)`` pair) as a name or an Embedder. ``defaults``: the audit-wide
    ``input_size``/``mean``/``std``/``crop_pct`` of modules and callables."""
    if isinstance(models, Mapping):
        pairs = [(str(k), v) for k, v in models.items()]
    elif isinstance(models, str) or _is_pair(models) or not isinstance(models, Sequence):
        pairs = [(None, models)]
    else:
        pairs = [(None, m) for m in models]
    out, taken = [], set()
    for name, given in pairs:
        model, preprocessing = given if _is_pair(given) else (given, None)
        if name is None:
            base = _default_name(model)
            name, n = base, 1
            while name in taken and not isinstance(model, str):
                n += 1
                name = f"{base}-{n}"
        taken.add(name)
        out.append(one_embedder(name, model, preprocessing, defaults, options))
    return out


def _is_pair(given: Any) -> bool:
    return (
        isinstance(given, tuple)
        and len(given) == 2
        and (given[1] is None or isinstance(given[1], (Mapping, Recipe)))
    )


@contextlib.contextmanager
def restored(embedders: Sequence[str | Embedder]) -> Iterator[None]:
    """Runs the audit, then puts every user's module back on its device, in its training mode."""
    try:
        yield
    finally:
        for e in embedders:
            if isinstance(e, ModuleEmbedder):
                e.module.train(e.was_training)
                if e.was_on is not None:
                    e.module.to(e.was_on)


__all__ = ["CallableEmbedder", "ModuleEmbedder", "ModelLike", "as_embedders", "restored"]
