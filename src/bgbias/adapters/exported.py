"""Exported models: ``onnx:<file>`` (run by onnxruntime) and ``torchscript:<file>``.

Their preprocessing comes from the file: the exact recipe ``bgbias export`` writes (see
:mod:`.metadata`), else the plain keys ``input_size``/``mean``/``std`` (ONNX metadata
properties or a fixed input shape; TorchScript: an extra file ``preprocessing.json``), else
224 px and ImageNet mean/std. ``--input-size/--mean/--std`` override what the file says.
Mean and std options are in 0-1 units, RGB.
"""

from __future__ import annotations

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
    override_recipe,
    register_form,
)
from .metadata import (
    ONNX_SUFFIXES,
    PREPROCESSING_FILE,
    TORCHSCRIPT_EXTRA_FILE,
    TORCHSCRIPT_SUFFIXES,
    ExportMetadata,
    json_extra_file,
    load_torchscript_file,
    onnx_session,
    read_plain_preprocessing,
)


def file_recipe(
    name: str, values: dict[str, Any], options: AdapterOptions, where: str, **plain
) -> tuple[Recipe, dict[str, Any]]:
    """The preprocessing a model file states, with the user's ``options`` over it, and what
    the file said (for provenance). ``values``: its metadata; ``plain``: plain keys found
    elsewhere (a fixed input shape)."""
    if ExportMetadata.present(values):
        metadata = ExportMetadata.from_strings(values, where)
        said = {"exported_by": f"bgbias {metadata.bgbias_version}", "label": metadata.label}
        return override_recipe(metadata.recipe, options), said
    found = plain | read_plain_preprocessing(values, where)
    return external_recipe(name, options, **found), found


def file_label(name: str, metadata: dict[str, Any]) -> str:
    """A model file's display name: the file, and the run it was exported from when bgbias
    exported it (``model.onnx (Normalized Softmax + BGAugment)``), so a file and the
    checkpoint it came from read alike side by side."""
    said = metadata.get("label")
    return f"{name} ({said})" if isinstance(said, str) and said and said != name else name


def _check_file(path: str, form: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{form}:{path}: model file not found")
    return file


def _session(path: Path, device: torch.device):
    """A session for ``path`` on ``device`` (CUDA when onnxruntime has it)."""
    from ..ort import import_onnxruntime

    providers = ["CPUExecutionProvider"]
    if (
        device.type == "cuda"
        and "CUDAExecutionProvider" in import_onnxruntime().get_available_providers()
    ):
        providers = ["CUDAExecutionProvider", *providers]
    return onnx_session(path, providers)


class OnnxEmbedder(Embedder):
    """An ONNX graph with one (B, 3, H, W) float input and a (B, D) first output."""

    def __init__(self, path: Path, spec: str, options: AdapterOptions):
        self.path = path
        session = _session(path, torch.device("cpu"))
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [(i.name, i.shape) for i in inputs]
            raise ConfigError(f"{spec}: expected one (B, 3, H, W) image input, found {shapes}")
        shape = inputs[0].shape
        fixed = {}
        if isinstance(shape[-1], int) and shape[-1] > 0:
            fixed["input_size"] = shape[-1]
            if options.input_size and options.input_size != shape[-1]:
                raise ConfigError(
                    f"{spec}: the model's input is fixed at {shape[-1]} px; "
                    f"--input-size {options.input_size} cannot be fed to it"
                )
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        values = session.get_modelmeta().custom_metadata_map
        recipe, metadata = file_recipe(f"onnx:{path.name}", values, options, spec, **fixed)
        super().__init__(
            spec,
            "onnx",
            recipe,
            label=file_label(path.name, metadata),
            details={"file": str(path.resolve()), "sha256": sha256_file(path)}
            | {f"file_{key}": value for key, value in metadata.items()},
        )
        self.session = session
        self.input_name = inputs[0].name

    def to(self, device: torch.device | str) -> OnnxEmbedder:
        device = torch.device(device)
        if device.type != self.device.type:
            self.session = _session(self.path, device)
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


def load_torchscript(path: str, options: AdapterOptions) -> TorchEmbedder:
    file = _check_file(path, "torchscript")
    spec = f"torchscript:{path}"
    module, extra = load_torchscript_file(file)
    values = json_extra_file(extra, TORCHSCRIPT_EXTRA_FILE, spec) or json_extra_file(
        extra, PREPROCESSING_FILE, spec
    )
    recipe, metadata = file_recipe(f"torchscript:{file.name}", values, options, spec)
    return TorchEmbedder(
        module,
        spec,
        "torchscript",
        recipe,
        label=file_label(file.name, metadata),
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
        suffixes=ONNX_SUFFIXES,
    )
)
register_form(
    AdapterForm(
        "torchscript",
        load_torchscript,
        "torchscript:<file.pt>",
        "a TorchScript model (preprocessing from its bgbias.json or preprocessing.json, or "
        "--input-size/--mean/--std)",
        prefix="torchscript",
        suffixes=TORCHSCRIPT_SUFFIXES,
    )
)
