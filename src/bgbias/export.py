"""Export an embedding model to ONNX or TorchScript, with its preprocessing in the file.

The exported graph maps ``images`` (B, 3, crop, crop), normalised by the model's recipe, to
``embeddings`` (B, D); the batch axis is free. What a runtime must do before calling it (resize
the shorter side, centre crop, channel order, mean and std) and where the model came from travel
inside the file, as string key/value pairs: ONNX ``metadata_props``, a TorchScript extra file
``bgbias.json``. :class:`~bgbias.adapters.metadata.ExportMetadata` writes and reads them; its
key names (defined once, in :mod:`bgbias.adapters.metadata`) are what the ``onnx:`` and
``torchscript:`` model adapters and other tools (a serving stack) read.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .adapters.metadata import (
    INPUT_NAME,
    ONNX_SUFFIXES,
    OUTPUT_NAME,
    TORCHSCRIPT_EXTRA_FILE,
    TORCHSCRIPT_SUFFIXES,
    ExportMetadata,
    MetadataKeys,
    onnx_session,
    read_onnx_metadata,
    read_torchscript_metadata,
)
from .errors import BgbiasError, ConfigError, ModelOutputError
from .io import atomic_write
from .registry import Registry

ONNX_MIN_OPSET = 11  # `bgbias export --opset` refuses lower ones too

PARITY_TOLERANCE = 1e-4  # max |exported - PyTorch| over a check batch, per embedding value


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
    session = onnx_session(data)
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
    "onnx", ExportFormat("onnx", ONNX_SUFFIXES, _write_onnx, _run_onnx, read_onnx_metadata)
)
EXPORT_FORMATS.register(
    "torchscript",
    ExportFormat(
        "torchscript",
        TORCHSCRIPT_SUFFIXES,
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


def check_opset(opset: int) -> None:
    """Refuse an ONNX opset this torch cannot export (its exporter fails deep inside)."""
    from torch.onnx import _constants  # the exporter's own limits; private, hence the fallback

    low = ONNX_MIN_OPSET
    high = getattr(
        _constants,
        "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET",
        getattr(_constants, "ONNX_MAX_OPSET", 17),
    )
    if not low <= opset <= high:
        raise ConfigError(
            f"--opset {opset}: torch {torch.__version__} exports ONNX opsets {low} to {high}"
        )


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
    if kind.name == "onnx":
        check_opset(opset)
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
