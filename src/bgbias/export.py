"""Export an embedding model to ONNX or TorchScript, with its preprocessing in the file.

The exported graph maps ``images`` (B, 3, crop, crop), normalised by the model's recipe, to
``embeddings`` (B, D); the batch axis is free. What a runtime must do before calling it (resize
the shorter side, centre crop, channel order, mean and std) and where the model came from travel
inside the file, as string key/value pairs: ONNX ``metadata_props``, a TorchScript extra file
``bgbias.json``. :class:`ExportMetadata` writes and reads them; the key names below are the
contract other tools (the ``onnx:`` model adapter, a serving stack) read.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .data.transforms import Normalization, Recipe
from .errors import BgbiasError, ConfigError, ModelOutputError
from .io import atomic_write
from .registry import Registry

METADATA_FORMAT = 1
INPUT_NAME, OUTPUT_NAME = "images", "embeddings"
TORCHSCRIPT_EXTRA_FILE = "bgbias.json"
PARITY_TOLERANCE = 1e-4  # max |exported - PyTorch| over a check batch, per embedding value


class MetadataKeys:
    """The metadata keys of an exported model (all values are strings)."""

    FORMAT = "bgbias.format"  # METADATA_FORMAT
    VERSION = "bgbias.version"  # the bgbias version that exported it
    RECIPE = "bgbias.recipe"  # JSON: name, resize, crop, channels, mean, std (0-255 units)
    EMBEDDING_SIZE = "bgbias.embedding_size"  # D
    NORMALIZED = "bgbias.normalized"  # "true": embeddings are L2-normalised (cosine = dot)
    SOURCE = "bgbias.source"  # JSON: the source model's provenance (Embedder.describe())
    SOURCE_SHA256 = "bgbias.source_sha256"  # sha256 of the source checkpoint ("" if none)
    LABEL = "bgbias.label"  # the model's name in tables, e.g. "ArcFace + BGAugment"


@dataclass(frozen=True)
class ExportMetadata:
    """What an exported model file says about itself."""

    recipe: Recipe
    embedding_size: int
    normalized: bool = True
    label: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    source_sha256: str = ""
    bgbias_version: str = __version__

    def to_strings(self) -> dict[str, str]:
        r, n = self.recipe, self.recipe.normalization
        recipe = {
            "name": r.name,
            "resize": r.resize,
            "crop": r.crop,
            "channels": n.channels,
            "mean": list(n.mean),
            "std": list(n.std),
            "scale": list(r.scale),  # the training crops, for completeness
            "ratio": list(r.ratio),
            "flip": r.flip,
        }
        return {
            MetadataKeys.FORMAT: str(METADATA_FORMAT),
            MetadataKeys.VERSION: self.bgbias_version,
            MetadataKeys.RECIPE: json.dumps(recipe),
            MetadataKeys.EMBEDDING_SIZE: str(self.embedding_size),
            MetadataKeys.NORMALIZED: "true" if self.normalized else "false",
            MetadataKeys.SOURCE: json.dumps(self.source, default=str),
            MetadataKeys.SOURCE_SHA256: self.source_sha256,
            MetadataKeys.LABEL: self.label,
        }

    @classmethod
    def from_strings(cls, values: dict[str, str], where: str) -> ExportMetadata:
        """Read metadata written by :meth:`to_strings`; ``where`` names the file in errors."""
        missing = [
            k
            for k in (MetadataKeys.FORMAT, MetadataKeys.RECIPE, MetadataKeys.EMBEDDING_SIZE)
            if k not in values
        ]
        if missing:
            raise ConfigError(
                f"{where}: no bgbias preprocessing metadata ({', '.join(missing)} missing); "
                "export it with `bgbias export`, or pass the input size, mean and std"
            )
        if values[MetadataKeys.FORMAT] != str(METADATA_FORMAT):
            raise ConfigError(
                f"{where}: metadata format {values[MetadataKeys.FORMAT]}; this bgbias "
                f"{__version__} reads format {METADATA_FORMAT}"
            )
        try:
            recipe = json.loads(values[MetadataKeys.RECIPE])
            normalization = Normalization(
                recipe["channels"], tuple(recipe["mean"]), tuple(recipe["std"])
            )
            training = {
                key: tuple(recipe[key]) if isinstance(recipe[key], list) else recipe[key]
                for key in ("scale", "ratio", "flip")
                if key in recipe
            }
            return cls(
                recipe=Recipe(
                    recipe["name"],
                    int(recipe["resize"]),
                    int(recipe["crop"]),
                    normalization,
                    **training,
                ),
                embedding_size=int(values[MetadataKeys.EMBEDDING_SIZE]),
                normalized=values.get(MetadataKeys.NORMALIZED, "true") == "true",
                label=values.get(MetadataKeys.LABEL, ""),
                source=json.loads(values.get(MetadataKeys.SOURCE) or "{}"),
                source_sha256=values.get(MetadataKeys.SOURCE_SHA256, ""),
                bgbias_version=values.get(MetadataKeys.VERSION, ""),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{where}: malformed bgbias metadata ({exc})") from None


def read_onnx_metadata(path: str | os.PathLike) -> ExportMetadata:
    """The metadata of an ONNX file (read with onnxruntime; ``onnx`` is not needed)."""
    from .ort import import_onnxruntime

    ort = import_onnxruntime()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ConfigError(f"{path}: not a readable ONNX model ({exc})") from None
    return ExportMetadata.from_strings(session.get_modelmeta().custom_metadata_map, str(path))


def read_torchscript_metadata(path: str | os.PathLike) -> ExportMetadata:
    extra = {TORCHSCRIPT_EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, ValueError, ...
        raise ConfigError(f"{path}: not a readable TorchScript model ({exc})") from None
    try:
        values = json.loads(extra[TORCHSCRIPT_EXTRA_FILE] or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: malformed {TORCHSCRIPT_EXTRA_FILE} ({exc})") from None
    return ExportMetadata.from_strings(values, str(path))


@dataclass(frozen=True)
class ExportFormat:
    """``write(module, example, metadata) -> bytes``; ``runner(bytes) -> images -> embeddings``
    (to check the written file); ``read_metadata(path)``."""

    name: str
    suffixes: tuple[str, ...]
    write: Callable[[torch.nn.Module, torch.Tensor, dict[str, str], int], bytes]
    runner: Callable[[bytes], Callable[[np.ndarray], np.ndarray]]
    read_metadata: Callable[[str | os.PathLike], ExportMetadata]


def _write_onnx(
    module: torch.nn.Module, example: torch.Tensor, metadata: dict[str, str], opset: int
) -> bytes:
    try:
        import onnx
    except ImportError:
        raise BgbiasError("ONNX export needs `pip install onnx`") from None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript-based exporter: works offline, without onnxscript
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = _describe_input(metadata)
    return model.SerializeToString()


def _run_onnx(data: bytes) -> Callable[[np.ndarray], np.ndarray]:
    from .ort import import_onnxruntime

    session = import_onnxruntime().InferenceSession(data, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {INPUT_NAME: images})[0]


def _write_torchscript(
    module: torch.nn.Module, example: torch.Tensor, metadata: dict[str, str], opset: int
) -> bytes:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(module, example)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_EXTRA_FILE: json.dumps(metadata)})
    return buffer.getvalue()


def _run_torchscript(data: bytes) -> Callable[[np.ndarray], np.ndarray]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(images)).numpy()

    return run


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")
EXPORT_FORMATS.register(
    "onnx", ExportFormat("onnx", (".onnx",), _write_onnx, _run_onnx, read_onnx_metadata)
)
EXPORT_FORMATS.register(
    "torchscript",
    ExportFormat(
        "torchscript",
        (".pt", ".ts", ".torchscript"),
        _write_torchscript,
        _run_torchscript,
        read_torchscript_metadata,
    ),
)


def format_for(path: str | os.PathLike, name: str | None = None) -> ExportFormat:
    """The format ``name``, or the one ``path``'s suffix names."""
    if name is not None:
        return EXPORT_FORMATS.get(name)
    suffix = Path(path).suffix.lower()
    for candidate in EXPORT_FORMATS:
        if suffix in EXPORT_FORMATS.get(candidate).suffixes:
            return EXPORT_FORMATS.get(candidate)
    known = ", ".join(s for f in EXPORT_FORMATS for s in EXPORT_FORMATS.get(f).suffixes)
    raise ConfigError(f"{path}: unknown model file suffix {suffix!r}; use {known} or --format")


def read_export_metadata(path: str | os.PathLike) -> ExportMetadata:
    """The metadata of an exported file (the format from its suffix)."""
    return format_for(path).read_metadata(path)


def _describe_input(metadata: dict[str, str]) -> str:
    recipe = json.loads(metadata[MetadataKeys.RECIPE])
    return (
        f"bgbias embedding model: {INPUT_NAME} (batch, 3, {recipe['crop']}, {recipe['crop']}) "
        f"float32, {recipe['channels']} order: resize the shorter side to {recipe['resize']}, "
        f"centre crop {recipe['crop']}, then (pixel 0-255 - mean {recipe['mean']}) / std "
        f"{recipe['std']} -> {OUTPUT_NAME} (batch, {metadata[MetadataKeys.EMBEDDING_SIZE]})"
    )


@dataclass
class ExportReport:
    path: Path
    format: str
    metadata: ExportMetadata
    max_difference: float  # max |exported - PyTorch| on the check batch
    check_batch: int
    bytes: int


def export_model(
    model: str,
    out: str | os.PathLike,
    format: str | None = None,
    opset: int = 17,
    check_batch: int = 3,
    seed: int = 0,
    options=None,
) -> ExportReport:
    """Export ``model`` (a bgbias checkpoint, or any form :func:`bgbias.adapters.load_embedder`
    reads that has a torch module) to ``out``; the written file is run on ``check_batch`` random
    images (another batch size than the traced one: the batch axis must be free) and must give
    PyTorch's embeddings to :data:`PARITY_TOLERANCE`, else nothing is written."""
    from .adapters import load_embedder

    out = Path(out)
    kind = format_for(out, format)
    embedder = load_embedder(model, options)
    module = embedder.module
    if module is None:
        raise ConfigError(f"{model}: a {embedder.form} model has no PyTorch module to export")
    module = module.cpu().eval()
    recipe = embedder.recipe
    generator = torch.Generator().manual_seed(seed)
    example = recipe.normalization(torch.rand(2, 3, recipe.crop, recipe.crop, generator=generator))
    check = recipe.normalization(
        torch.rand(check_batch, 3, recipe.crop, recipe.crop, generator=generator)
    )
    with torch.no_grad():
        expected = module(check).float()
    details = embedder.describe()
    metadata = ExportMetadata(
        recipe=recipe,
        embedding_size=int(expected.shape[1]),
        normalized=bool(torch.allclose(expected.norm(dim=1), torch.ones(check_batch), atol=1e-4)),
        label=embedder.label,
        source=details,
        source_sha256=str(details.get("sha256", "")),
    )
    with torch.no_grad():
        data = kind.write(module, example, metadata.to_strings(), opset)
    got = kind.runner(data)(check.numpy())
    difference = float(np.abs(got - expected.numpy()).max())
    if got.shape != tuple(expected.shape) or not difference <= PARITY_TOLERANCE:
        raise ModelOutputError(
            f"{model}: the {kind.name} export differs from PyTorch (shape {got.shape} vs "
            f"{tuple(expected.shape)}, max |difference| {difference:.2e} > "
            f"{PARITY_TOLERANCE:g}); nothing written"
        )
    with atomic_write(out, "wb") as handle:
        handle.write(data)
    return ExportReport(out, kind.name, metadata, difference, check_batch, len(data))
