"""Exported models: ``onnx:<file>`` (run by onnxruntime) and ``torchscript:<file>``.

Their preprocessing comes from the file when it says: a file written by ``bgbias export``
carries its model's whole recipe (resize, crop, channel order, mean, std: see
:mod:`bgbias.export`), used as recorded. Other files may say ``input_size``, ``mean``, ``std``
(ONNX: metadata properties, or a fixed input shape; TorchScript: an extra file
``preprocessing.json``), completed by ``--input-size/--mean/--std``, else 224 px and ImageNet
mean/std. Mean and std are in 0-1 units, RGB.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.transforms import Recipe
from ..errors import ConfigError
from ..io import sha256_file
from .base import (
    AdapterForm,
    AdapterOptions,
    Embedder,
    TorchEmbedder,
    external_recipe,
    register_form,
)

PREPROCESSING_FILE = "preprocessing.json"  # TorchScript extra file bgbias reads


def read_preprocessing(values: dict[str, Any], source: str) -> dict[str, Any]:
    """``input_size``/``mean``/``std`` from a metadata dict whose values are numbers, lists, or
    strings of them ("224", "0.5,0.5,0.5", "[0.5, 0.5, 0.5]"); other keys are ignored."""
    found: dict[str, Any] = {}
    for key in ("input_size", "mean", "std"):
        if key not in values:
            continue
        value = values[key]
        try:
            if isinstance(value, str):
                text = value.strip()
                value = json.loads(text) if text.startswith("[") else text.split(",")
            numbers = [float(v) for v in (value if isinstance(value, list) else [value])]
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: metadata {key}={values[key]!r} is not numbers") from None
        if key == "input_size":
            found[key] = int(numbers[-1])  # a bare size or timm's (3, H, W)
        else:
            found[key] = tuple(numbers)
    return found


def recorded_recipe(values: dict[str, str], spec: str, options: AdapterOptions) -> Recipe | None:
    """The recipe ``bgbias export`` recorded in a file's metadata ``values``; None for a file
    another tool wrote."""
    from ..export import ExportMetadata, MetadataKeys

    if MetadataKeys.FORMAT not in values:
        return None
    if options.input_size or options.mean or options.std:
        raise ConfigError(
            f"{spec}: the file records the preprocessing its model was trained with "
            "(bgbias export); --input-size/--mean/--std would feed it other inputs"
        )
    return ExportMetadata.from_strings(values, spec).recipe


def _check_file(path: str, form: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{form}:{path}: model file not found")
    return file


def onnx_session(path: Path, device: torch.device):
    """An onnxruntime session for ``path`` on ``device``. onnxruntime is imported with its
    telemetry switched off, as everywhere in bgbias (the mask predictors share this rule)."""
    from ..ort import import_onnxruntime

    ort = import_onnxruntime()
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers = ["CUDAExecutionProvider", *providers]
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ConfigError(f"onnx:{path}: not a loadable ONNX model ({exc})") from None


class OnnxEmbedder(Embedder):
    """An ONNX graph with one (B, 3, H, W) float input and a (B, D) first output."""

    def __init__(self, path: Path, spec: str, options: AdapterOptions):
        self.path = path
        session = onnx_session(path, torch.device("cpu"))
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [(i.name, i.shape) for i in inputs]
            raise ConfigError(f"{spec}: expected one (B, 3, H, W) image input, found {shapes}")
        shape = inputs[0].shape
        values = session.get_modelmeta().custom_metadata_map
        metadata = read_preprocessing(values, spec)
        if isinstance(shape[-1], int) and shape[-1] > 0:
            metadata.setdefault("input_size", shape[-1])
            if options.input_size and options.input_size != shape[-1]:
                raise ConfigError(
                    f"{spec}: the model's input is fixed at {shape[-1]} px; "
                    f"--input-size {options.input_size} cannot be fed to it"
                )
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        recipe = recorded_recipe(values, spec, options) or external_recipe(
            f"onnx:{path.name}", options, **metadata
        )
        super().__init__(
            spec,
            "onnx",
            recipe,
            label=path.name,
            details={"file": str(path.resolve()), "sha256": sha256_file(path)}
            | {f"file_{key}": value for key, value in metadata.items()},
        )
        self.session = session
        self.input_name = inputs[0].name

    def to(self, device: torch.device | str) -> OnnxEmbedder:
        device = torch.device(device)
        if device.type != self.device.type:
            self.session = onnx_session(self.path, device)
        return super().to(device)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().float().cpu().numpy())
        step = self.fixed_batch or len(array)
        outputs = [
            np.asarray(self.session.run(None, {self.input_name: array[i : i + step]})[0])
            for i in range(0, len(array), step)
        ]
        return torch.from_numpy(np.concatenate(outputs) if len(outputs) > 1 else outputs[0])


def load_onnx(path: str, options: AdapterOptions) -> OnnxEmbedder:
    return OnnxEmbedder(_check_file(path, "onnx"), f"onnx:{path}", options)


def _extra_json(extra: dict[str, str], name: str, spec: str) -> dict[str, Any]:
    """A TorchScript extra file's JSON object ({} when the file has none)."""
    try:
        return json.loads(extra[name]) if extra[name] else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{spec}: unreadable {name} ({exc})") from None


def load_torchscript(path: str, options: AdapterOptions) -> TorchEmbedder:
    file = _check_file(path, "torchscript")
    from ..export import TORCHSCRIPT_EXTRA_FILE

    extra = {PREPROCESSING_FILE: "", TORCHSCRIPT_EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is still read
            module = torch.jit.load(str(file), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/ValueError/...
        raise ConfigError(f"torchscript:{path}: not a loadable TorchScript file ({exc})") from None
    spec = f"torchscript:{path}"
    metadata = read_preprocessing(_extra_json(extra, PREPROCESSING_FILE, spec), spec)
    recorded = recorded_recipe(_extra_json(extra, TORCHSCRIPT_EXTRA_FILE, spec), spec, options)
    return TorchEmbedder(
        module,
        spec,
        "torchscript",
        recorded or external_recipe(f"torchscript:{file.name}", options, **metadata),
        label=file.name,
        details={"file": str(file.resolve()), "sha256": sha256_file(file)}
        | {f"file_{key}": value for key, value in metadata.items()},
    )


register_form(
    AdapterForm(
        "onnx",
        load_onnx,
        "onnx:<file.onnx>",
        "an ONNX model run by onnxruntime (preprocessing from its metadata or --input-size/"
        "--mean/--std)",
        prefix="onnx",
    )
)
register_form(
    AdapterForm(
        "torchscript",
        load_torchscript,
        "torchscript:<file.pt>",
        "a TorchScript model (preprocessing from its preprocessing.json or --input-size/"
        "--mean/--std)",
        prefix="torchscript",
    )
)
