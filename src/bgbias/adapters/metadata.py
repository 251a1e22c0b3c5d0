"""What an exported model file says about itself: the ONE definition of its metadata keys.

``bgbias export`` writes them and the ``onnx:`` / ``torchscript:`` adapters read them, as string
key/value pairs: ONNX ``metadata_props``, a TorchScript extra file ``bgbias.json``. The key names
are the contract other tools (a serving stack) read too. Files bgbias did not export may instead
carry the plain keys ``input_size``/``mean``/``std`` (0-1 units, RGB; ONNX properties or a
TorchScript extra file ``preprocessing.json``).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import __version__
from ..data.transforms import Normalization, Recipe
from ..errors import ConfigError

METADATA_FORMAT = 1
INPUT_NAME, OUTPUT_NAME = "images", "embeddings"  # the exported graph's input and output
TORCHSCRIPT_EXTRA_FILE = "bgbias.json"  # the metadata of a TorchScript file bgbias exported
PREPROCESSING_FILE = "preprocessing.json"  # the plain keys of a TorchScript file made elsewhere
PLAIN_KEYS = ("input_size", "mean", "std")
# the file suffixes of each exported format: `bgbias export` picks the format by them and a
# model file named without a form (``m.onnx``) is read as the one its suffix says
ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript")


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
        required = (MetadataKeys.FORMAT, MetadataKeys.RECIPE, MetadataKeys.EMBEDDING_SIZE)
        missing = [k for k in required if k not in values]
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

    @staticmethod
    def present(values: dict[str, str]) -> bool:
        """Whether ``values`` holds bgbias export metadata (else it may hold plain keys)."""
        return MetadataKeys.FORMAT in values


def read_plain_preprocessing(values: dict[str, Any], where: str) -> dict[str, Any]:
    """The :data:`PLAIN_KEYS` of a metadata dict whose values are numbers, lists, or strings of
    them ("224", "0.5,0.5,0.5", "[0.5, 0.5, 0.5]"); other keys are ignored."""
    found: dict[str, Any] = {}
    for key in PLAIN_KEYS:
        if key not in values:
            continue
        value = values[key]
        try:
            if isinstance(value, str):
                text = value.strip()
                value = json.loads(text) if text.startswith("[") else text.split(",")
            numbers = [float(v) for v in (value if isinstance(value, list) else [value])]
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: metadata {key}={values[key]!r} is not numbers") from None
        if key == "input_size":
            found[key] = int(numbers[-1])  # a bare size or timm's (3, H, W)
        else:
            found[key] = tuple(numbers)
    return found


def first_sentence(exc: BaseException) -> str:
    """The gist of a runtime's error, for a one-line message: its first line up to the first
    sentence end (onnxruntime and torch append paragraphs of advice)."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line.split(". ")[0].rstrip(".")


def onnx_session(path: str | os.PathLike | bytes, providers: list[str] | None = None):
    """An onnxruntime session (onnxruntime imported with its telemetry off, as everywhere)."""
    from ..ort import import_onnxruntime

    ort = import_onnxruntime()
    where = "onnx model" if isinstance(path, bytes) else f"onnx:{path}"
    try:
        return ort.InferenceSession(
            path if isinstance(path, bytes) else str(path),
            providers=providers or ["CPUExecutionProvider"],
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ConfigError(f"{where}: not a loadable ONNX model ({first_sentence(exc)})") from None


def load_torchscript_file(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    """The TorchScript module at ``path`` (on the CPU) and its extra files bgbias reads
    (:data:`TORCHSCRIPT_EXTRA_FILE`, :data:`PREPROCESSING_FILE`; "" when absent)."""
    extra = {TORCHSCRIPT_EXTRA_FILE: "", PREPROCESSING_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is still read
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/ValueError/...
        raise ConfigError(
            f"torchscript:{path}: not a loadable TorchScript file ({first_sentence(exc)})"
        ) from None
    return module, {k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items()}


def json_extra_file(extra: dict[str, str], name: str, where: str) -> dict[str, Any]:
    """The JSON object of TorchScript extra file ``name`` ({} when absent)."""
    try:
        values = json.loads(extra.get(name) or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: malformed {name} ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: {name} must hold a JSON object")
    return values


def read_onnx_metadata(path: str | os.PathLike) -> ExportMetadata:
    """The bgbias metadata of an ONNX file (read with onnxruntime; ``onnx`` is not needed)."""
    values = onnx_session(path).get_modelmeta().custom_metadata_map
    return ExportMetadata.from_strings(values, str(path))


def read_torchscript_metadata(path: str | os.PathLike) -> ExportMetadata:
    """The bgbias metadata of a TorchScript file."""
    _, extra = load_torchscript_file(path)
    values = json_extra_file(extra, TORCHSCRIPT_EXTRA_FILE, str(path))
    return ExportMetadata.from_strings(values, str(path))
