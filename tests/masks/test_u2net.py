import numpy as np
import pytest
import torch

from bgbias.masks.u2net import (
    U2Net,
    U2NetWeightsError,
    conv_layers,
    load_onnx_weights,
    load_u2net,
)
from bgbias.ort import import_onnxruntime
from tests.helpers import write_onnx_masker, write_random_u2net


def run_onnx(path, x: torch.Tensor) -> np.ndarray:
    ort = import_onnxruntime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.fixture(scope="module")
def random_u2netp(tmp_path_factory):
    return write_random_u2net(tmp_path_factory.mktemp("u2net") / "random-u2netp.onnx")


def test_weights_read_back_from_an_onnx_export_are_the_exported_ones(random_u2netp):
    original, path = random_u2netp
    loaded = load_u2net("u2netp", path)
    expected = original.state_dict()
    assert set(loaded.state_dict()) == set(expected)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_torch_u2netp_computes_what_onnxruntime_computes_on_the_export(random_u2netp):
    _, path = random_u2netp
    loaded = load_u2net("u2netp", path)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    reference = run_onnx(path, x)
    with torch.no_grad():
        output = loaded(x).numpy()
    assert output.shape == reference.shape == (1, 1, 64, 64)
    assert reference.std() > 0.01  # a map with structure, not a constant
    assert np.abs(output - reference).max() < 1e-5
    # the comparison sees a wrong weight mapping: swap two convs of the same shape
    first, second = [c for c in conv_layers(loaded) if c.weight.shape == (16, 16, 3, 3)][:2]
    with torch.no_grad():
        saved = first.weight.clone()
        first.weight.copy_(second.weight)
        second.weight.copy_(saved)
        assert np.abs(loaded(x).numpy() - reference).max() > 1e-3


def test_architectures_match_the_published_sizes():
    params = {
        name: sum(p.numel() for p in U2Net.named(name).parameters()) for name in ("u2net", "u2netp")
    }
    # the initializers of rembg's u2net.onnx / u2netp.onnx hold exactly this many numbers
    assert params == {"u2net": 43_981_069, "u2netp": 1_125_485}
    x = torch.rand(2, 3, 45, 70)  # any size: ceil-mode pooling, upsampling to the skip's size
    with torch.no_grad():
        out = U2Net.named("u2netp")(x)
    assert out.shape == (2, 1, 45, 70) and out.min() >= 0 and out.max() <= 1


def test_a_different_graph_is_rejected_with_the_file_named(tmp_path, random_u2netp):
    other = write_onnx_masker(tmp_path / "masker.onnx", layers=2)
    with pytest.raises(U2NetWeightsError, match="masker.onnx: 2 convolutions, but u2netp has 119"):
        load_u2net("u2netp", other)
    _, u2netp_file = random_u2netp
    with pytest.raises(U2NetWeightsError, match=r"convolution 1 is \(16, 64, 3, 3\).*expects"):
        load_onnx_weights(U2Net.named("u2net"), u2netp_file, "u2net")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(U2NetWeightsError, match="junk.onnx: not a readable ONNX file"):
        load_u2net("u2netp", tmp_path / "junk.onnx")
