"""The model-adapter interface: any retrieval model as an :class:`Embedder` (its preprocessing
and ``images -> (B, D) embeddings``), and a registry of the forms a user can name a model in.

Evaluation, attention scores, ``bgbias audit`` and ``bgbias index`` / ``serve`` all take an
Embedder, so every model form works everywhere. A form is one registry entry: a prefix
(``onnx:model.onnx``) or a pattern recognised without one (a ``.ckpt`` path, a backbone name).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

import torch
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity

from ..data.transforms import Normalization, Recipe
from ..errors import ConfigError, ModelOutputError
from ..registry import Registry


@dataclass(frozen=True)
class AdapterOptions:
    """What a model file may not say itself. ``input_size``/``mean``/``std`` (0-1 units, RGB)
    override or complete the preprocessing; ``weights`` is a local weight file."""

    weights: str | None = None
    pretrained: bool = True
    input_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875  # timm's and torchvision's eval resize: 224 / 0.875 = 256


def external_recipe(
    name: str,
    options: AdapterOptions,
    input_size: int | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    crop_pct: float = DEFAULT_CROP_PCT,
) -> Recipe:
    """The eval preprocessing of a model bgbias did not make: what the model file says
    (``input_size``/``mean``/``std``, 0-1 units, RGB), overridden by the user's ``options``,
    else 224 px and ImageNet mean/std. Resize the shorter side to ``input_size / crop_pct``,
    centre crop ``input_size``."""
    size = options.input_size or input_size or 224
    mean = options.mean or mean or IMAGENET_MEAN
    std = options.std or std or IMAGENET_STD
    for label, values in (("mean", mean), ("std", std)):
        if len(values) != 3 or (label == "std" and min(values) <= 0):
            raise ConfigError(f"{name}: {label} must be 3 numbers (std > 0), got {values}")
    return Recipe(
        name,
        resize=int(round(size / crop_pct)),
        crop=int(size),
        normalization=Normalization(
            "RGB", tuple(255.0 * float(v) for v in mean), tuple(255.0 * float(v) for v in std)
        ),
    )


def override_recipe(recipe: Recipe, options: AdapterOptions) -> Recipe:
    """``recipe`` (the preprocessing a model file states exactly) with what the user set in
    ``options``: ``input_size`` scales resize and crop alike; ``mean``/``std`` (0-1, RGB) are
    put in the recipe's channel order."""
    norm = recipe.normalization

    def channel_order(values: tuple[float, float, float] | None, current):
        if values is None:
            return current
        scaled = tuple(255.0 * float(v) for v in values)
        return scaled if norm.channels == "RGB" else scaled[::-1]

    size = options.input_size
    return recipe.with_overrides(
        crop=size,
        resize=int(round(size * recipe.resize / recipe.crop)) if size else None,
        normalization=Normalization(
            norm.channels,
            channel_order(options.mean, norm.mean),
            channel_order(options.std, norm.std),
        ),
    )


def missing_package(syntax: str, package: str, extra: str, cause: BaseException) -> ConfigError:
    """The one-line error of a form whose optional package is absent or does not import."""
    reason = "is not installed" if isinstance(cause, ModuleNotFoundError) else f"failed: {cause}"
    return ConfigError(
        f"{syntax} models need {package} (`pip install bgbias[{extra}]`); import {package} {reason}"
    )


class Embedder(ABC):
    """A model that maps preprocessed images to embeddings.

    ``recipe``: its eval preprocessing (resize the shorter side, centre crop, normalise), as
    :class:`bgbias.data.transforms.PairedTransform` applies it. Calling the embedder checks the
    output: (B, 3, crop, crop) normalised images -> (B, D) finite float32 embeddings.
    """

    def __init__(
        self,
        spec: str,
        form: str,
        recipe: Recipe,
        label: str | None = None,
        details: dict[str, Any] | None = None,
    ):
        self.spec = spec  # the model as the user named it
        self.form = form
        self.recipe = recipe
        self.label = label or spec
        self.details = dict(details or {})
        self.device = torch.device("cpu")

    config: Any = None  # a bgbias training config, when the model comes from a bgbias run
    distance: BaseDistance = CosineSimilarity()  # what attribution maps differentiate

    @property
    def module(self) -> torch.nn.Module | None:
        """A differentiable torch module with ``module(images) == embed(images)``, or None."""
        return None

    @abstractmethod
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images normalised by ``recipe`` -> (B, D) embeddings."""

    def to(self, device: torch.device | str) -> Embedder:
        self.device = torch.device(device)
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = self.embed(images)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or len(out) != len(images):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelOutputError(
                f"{self.spec}: output must be (batch, dim) = ({len(images)}, D), got {shape}"
            )
        out = out.float()
        if not bool(torch.isfinite(out).all()):
            raise ModelOutputError(f"{self.spec}: embeddings contain NaN or inf")
        return out

    def describe(self) -> dict[str, Any]:
        """Provenance for result files: the model as named, its form, its preprocessing."""
        return (
            {"model": self.spec, "form": self.form, "label": self.label}
            | self.details
            | {"recipe": asdict(self.recipe) | {"normalization": asdict(self.recipe.normalization)}}
        )


class TorchEmbedder(Embedder):
    """An ``nn.Module`` mapping normalised images to embeddings."""

    def __init__(self, module: torch.nn.Module, spec: str, form: str, recipe: Recipe, **kwargs):
        super().__init__(spec, form, recipe, **kwargs)
        self._module = module.eval()

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def to(self, device: torch.device | str) -> TorchEmbedder:
        super().to(device)
        self._module.to(self.device)
        return self

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self._module(images.to(self.device))


@dataclass(frozen=True)
class AdapterForm:
    """One way to name a model: ``prefix:rest`` (``prefix`` set), a file ending in one of
    ``suffixes`` (``m.onnx`` as ``onnx:m.onnx``), or a spec ``matches`` accepts."""

    name: str
    load: Callable[[str, AdapterOptions], Embedder]
    syntax: str  # e.g. "onnx:<file.onnx>"
    description: str
    prefix: str | None = None
    matches: Callable[[str], bool] | None = None
    suffixes: tuple[str, ...] = ()  # lower case, with the dot
    requires: tuple[str, ...] = field(default=())  # optional packages it needs


ADAPTERS: Registry[AdapterForm] = Registry("model form")


def register_form(form: AdapterForm) -> AdapterForm:
    return ADAPTERS.register(form.name, form)


def load_embedder(spec: str, options: AdapterOptions | None = None) -> Embedder:
    """The model ``spec`` names, in any registered form (a model file by its suffix too); an
    unknown form lists them all."""
    options = options or AdapterOptions()
    forms = [ADAPTERS.get(name) for name in ADAPTERS]
    prefix, colon, rest = spec.partition(":")
    for form in forms:
        if colon and form.prefix == prefix:
            if not rest:
                raise ConfigError(f"model {spec!r}: nothing after {prefix}:; use {form.syntax}")
            return form.load(rest, options)
    for form in forms:
        if form.matches is not None and form.matches(spec):
            return form.load(spec, options)
    suffix = PurePath(spec).suffix.lower()
    for form in forms:
        if suffix and suffix in form.suffixes:
            return form.load(spec, options)
    listed = "; ".join(f"{f.syntax} ({f.description})" for f in forms)
    if suffix:
        files = ", ".join(f"{'/'.join(f.suffixes)} ({f.name})" for f in forms if f.suffixes)
        raise ConfigError(
            f"model file {spec}: suffix {suffix!r} names no model form (model files: {files}); "
            f"forms: {listed}"
        )
    raise ConfigError(f"model {spec!r} matches no model form; forms: {listed}")
