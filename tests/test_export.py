"""`bgbias export`: the exported file gives PyTorch's embeddings and carries its preprocessing."""

import numpy as np
import pytest
import torch

from bgbias.cli import main
from bgbias.errors import ConfigError
from bgbias.export import (
    INPUT_NAME,
    PARITY_TOLERANCE,
    MetadataKeys,
    export_model,
    read_export_metadata,
)
from bgbias.io import sha256_file
from bgbias.ort import import_onnxruntime
from bgbias.runs import load_trained_model
from tests.helpers import write_checkpoint, write_onnx_masker


def images(recipe, n: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return recipe.normalization(torch.rand(n, 3, recipe.crop, recipe.crop, generator=generator))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run") / "best.ckpt", seed=3)


def run_exported(path, x: torch.Tensor) -> np.ndarray:
    if path.suffix == ".onnx":
        session = import_onnxruntime().InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        return session.run(None, {INPUT_NAME: x.numpy()})[0]
    with torch.no_grad():
        return torch.jit.load(str(path))(x).numpy()


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_export_gives_pytorch_embeddings_for_any_batch_size(checkpoint, tmp_path, capsys, suffix):
    out = tmp_path / f"model{suffix}"
    assert main(["export", str(checkpoint), str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    model = load_trained_model(checkpoint).model
    for batch in (1, 7):
        x = images(model.recipe, batch, seed=batch)
        with torch.no_grad():
            expected = model(x).numpy()
        got = run_exported(out, x)
        assert got.shape == (batch, 16)
        assert np.abs(got - expected).max() <= PARITY_TOLERANCE


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_export_records_recipe_and_provenance(checkpoint, tmp_path, suffix):
    report = export_model(str(checkpoint), tmp_path / f"m{suffix}")
    metadata = read_export_metadata(report.path)
    trained = load_trained_model(checkpoint)
    assert metadata.recipe == trained.model.recipe  # resize, crop, channels, mean, std
    assert metadata.embedding_size == 16 and metadata.normalized
    assert metadata.source_sha256 == sha256_file(checkpoint)
    assert metadata.source["loss"] == "arcface" and metadata.source["mode"] == "base"
    assert metadata.label == "ArcFace" and metadata.bgbias_version


@pytest.mark.parametrize("form", ["onnx", "torchscript"])
def test_the_model_adapter_reads_the_recorded_recipe(checkpoint, tmp_path, form):
    from bgbias.adapters import load_embedder

    out = export_model(str(checkpoint), tmp_path / ("m.onnx" if form == "onnx" else "m.pt")).path
    trained = load_trained_model(checkpoint).model
    assert load_embedder(f"{form}:{out}").recipe == trained.recipe  # not 224 px and ImageNet's


def test_onnx_metadata_is_plain_strings_any_runtime_reads(checkpoint, tmp_path):
    out = export_model(str(checkpoint), tmp_path / "m.onnx").path
    session = import_onnxruntime().InferenceSession(str(out), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert props[MetadataKeys.SOURCE_SHA256] == sha256_file(checkpoint)
    assert '"crop": 64' in props[MetadataKeys.RECIPE]
    assert session.get_inputs()[0].shape[0] == "batch"  # dynamic batch axis


def test_a_model_file_without_bgbias_metadata_says_so(tmp_path):
    plain = write_onnx_masker(tmp_path / "plain.onnx")
    with pytest.raises(ConfigError, match="no bgbias preprocessing metadata"):
        read_export_metadata(plain)


def test_export_errors_name_the_problem(checkpoint, tmp_path, capsys):
    assert main(["export", str(checkpoint), str(tmp_path / "m.bin")]) == 1
    assert "unknown model file suffix '.bin'" in capsys.readouterr().err
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    assert main(["export", str(tmp_path / "bad.ckpt"), str(tmp_path / "m.onnx")]) == 1
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_efficientnet_lite0_exports_to_onnx_within_tolerance(tmp_path):
    checkpoint = write_checkpoint(
        tmp_path / "e.ckpt", backbone="efficientnet_lite0", embedding_size=32
    )
    report = export_model(str(checkpoint), tmp_path / "e.onnx")
    assert report.max_difference <= PARITY_TOLERANCE
    model = load_trained_model(checkpoint).model
    x = images(model.recipe, 4)
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(run_exported(report.path, x) - expected).max() <= PARITY_TOLERANCE
