import hashlib
import logging
import sys
import types

import pytest
import torch
from torch import nn

from bgbias.adapters import AdapterOptions
from bgbias.backbones import BACKBONES, backbone_spec
from bgbias.backbones.bninception import BNInception, load_bninception_weights
from bgbias.errors import ConfigError
from bgbias.models import build_model
from tests.helpers import serve_folder


def test_bninception_structure_and_output_shape():
    model = BNInception().eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 227, 227))
        pooled = model(torch.randn(2, 3, 227, 227))
    assert features.shape == (1, 1024, 7, 7) and pooled.shape == (2, 1024)
    keys = model.state_dict()
    # the module names of the standard ImageNet weight file
    for key in (
        "conv1_7x7_s2.weight",
        "conv2_3x3_bn.running_mean",
        "inception_3a_1x1.weight",
        "inception_3c_double_3x3_2.weight",
        "inception_5b_pool_proj_bn.bias",
    ):
        assert key in keys
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(10.2e6, rel=0.05)


def test_bninception_weight_file_loads_with_caffe_shapes(tmp_path):
    source = BNInception()
    state = {
        k: (v.reshape(1, -1) if k.endswith("_bn.weight") else v)  # old ports: (1, C)
        for k, v in source.state_dict().items()
    }
    state["last_linear.weight"] = torch.zeros(1000, 1024)
    state["last_linear.bias"] = torch.zeros(1000)
    torch.save(state, tmp_path / "bn_inception.pth")
    target = BNInception()
    load_bninception_weights(target, tmp_path / "bn_inception.pth")
    assert torch.equal(target.conv1_7x7_s2_bn.weight, source.conv1_7x7_s2_bn.weight)
    torch.save({"conv1_7x7_s2.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="does not match BN-Inception"):
        load_bninception_weights(target, tmp_path / "other.pth")


def test_missing_bninception_weights_explain_the_offline_route(tmp_path, monkeypatch):
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path))
    import bgbias.backbones.bninception as bni

    monkeypatch.setattr(bni, "WEIGHTS_URL", "http://127.0.0.1:9/bn_inception.pth")
    with pytest.raises(ConfigError, match="model.weights=PATH"):
        build_model("bninception", pretrained=True)


def _weights_file(path):
    torch.save(BNInception().state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bninception_weights_are_downloaded_verified_and_cached(tmp_path, monkeypatch):
    import bgbias.backbones.bninception as bni

    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    (tmp_path / "server").mkdir()
    good = tmp_path / "server" / bni.WEIGHTS_FILE
    digest = _weights_file(good)
    (tmp_path / "server" / "tampered.pth").write_bytes(good.read_bytes()[:-10] + b"0" * 10)
    monkeypatch.setattr(bni, "WEIGHTS_SHA256", digest)
    cached = tmp_path / "home" / "weights" / bni.WEIGHTS_FILE
    with serve_folder(tmp_path / "server") as url:
        monkeypatch.setattr(bni, "WEIGHTS_URL", f"{url}/tampered.pth")
        with pytest.raises(ConfigError, match=r"tampered.pth: SHA256 hash .* does not match"):
            build_model("bninception", pretrained=True)
        assert not cached.exists()
        monkeypatch.setattr(bni, "WEIGHTS_URL", f"{url}/{bni.WEIGHTS_FILE}")
        build_model("bninception", pretrained=True)
    assert cached.read_bytes() == good.read_bytes()
    build_model("bninception", pretrained=True)  # offline now: the verified copy is used
    cached.write_bytes(cached.read_bytes()[:1000])  # damaged later
    with pytest.raises(ConfigError, match="missing or damaged in .*could not be downloaded"):
        build_model("bninception", pretrained=True)


def test_local_bninception_weights_are_checked(tmp_path, monkeypatch, caplog):
    import bgbias.backbones.bninception as bni
    from bgbias.downloads import AssetError

    digest = _weights_file(tmp_path / "w.pth")
    named = tmp_path / f"bn-{digest[:9]}.pth"
    named.write_bytes((tmp_path / "w.pth").read_bytes())
    build_model("bninception", pretrained=True, weights=str(named))
    wrong = tmp_path / f"bn-{'0' * 9}.pth"
    wrong.write_bytes(named.read_bytes())
    with pytest.raises(AssetError, match=f"bn-{'0' * 9}.pth: sha256 .* does not start with"):
        build_model("bninception", pretrained=True, weights=str(wrong))
    published = tmp_path / bni.WEIGHTS_FILE  # the published name: the full pinned sha256
    published.write_bytes(named.read_bytes())
    with pytest.raises(AssetError, match=f"{bni.WEIGHTS_FILE}: sha256 .* is not the pinned"):
        build_model("bninception", pretrained=True, weights=str(published))
    monkeypatch.setattr(bni, "WEIGHTS_SHA256", digest)
    build_model("bninception", pretrained=True, weights=str(published))
    monkeypatch.setattr(logging.getLogger("bgbias"), "propagate", True)  # the CLI turns it off
    with caplog.at_level("WARNING", logger="bgbias"):
        build_model("bninception", pretrained=True, weights=str(tmp_path / "w.pth"))
    assert "loaded unverified" in caplog.text
    with pytest.raises(ConfigError, match="weight file not found"):
        build_model("bninception", pretrained=True, weights=str(tmp_path / "none.pth"))


def test_efficientnet_lite0_imagenet_weights_work_offline():
    model = build_model("efficientnet_lite0", pretrained=True)
    assert model.recipe.name == "efficientnet_lite" and model.freeze_batchnorm
    first = next(iter(model.backbone.net._bn0.parameters()))
    assert not torch.allclose(first, torch.ones_like(first))  # trained weights, not init
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 128) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_pretrained_backbones_keep_batchnorm_frozen_in_training():
    model = build_model("efficientnet_lite0", pretrained=True).train()
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.head.training
    scratch = build_model("small_cnn", pretrained=False).train()
    assert all(m.training for m in scratch.modules() if isinstance(m, nn.BatchNorm2d))


def test_embedding_head_size_and_no_head():
    model = build_model("small_cnn", pretrained=False, embedding_size=32)
    assert model(torch.randn(3, 3, 64, 64)).shape == (3, 32)
    bare = build_model("small_cnn", pretrained=False, embedding_size=0)
    assert bare.embedding_size == BACKBONES.get("small_cnn").features
    with pytest.raises(ConfigError, match="has no pretrained weights"):
        build_model("small_cnn", pretrained=True)


@pytest.fixture
def fake_timm(monkeypatch):
    """A stand-in timm with one model, tiny_net: (B, 3, H, W) -> (B, 7) channel means."""
    fake = types.ModuleType("timm")

    class Net(nn.Module):
        num_features = 7

        def forward(self, x):
            return x.mean(dim=(2, 3)).repeat(1, 3)[:, :7]

    fake.is_model = lambda name: name == "tiny_net"
    fake.create_model = lambda name, pretrained, num_classes, **kw: Net()
    fake.get_pretrained_cfg = lambda name: types.SimpleNamespace(
        to_dict=lambda: {
            "input_size": (3, 96, 96),
            "crop_pct": 0.75,
            "mean": (0.5, 0.5, 0.5),
            "std": (0.25, 0.25, 0.25),
        }
    )
    fake.__version__ = "0-fake"
    monkeypatch.setitem(sys.modules, "timm", fake)
    return fake


def test_timm_models_by_name(fake_timm):
    spec = backbone_spec("timm:tiny_net")
    recipe = spec.preprocessing()
    assert (recipe.crop, recipe.resize, spec.features) == (96, 128, 7)
    assert recipe.normalization.mean == (127.5, 127.5, 127.5)
    model = build_model("timm:tiny_net", pretrained=False, embedding_size=4)
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 4)
    with pytest.raises(ConfigError, match="timm has no model"):
        backbone_spec("timm:nope")


def test_timm_models_have_one_spelling_and_one_path(fake_timm):
    from bgbias.adapters import load_embedder

    images = torch.randn(3, 3, 96, 96)
    embedder = load_embedder("timm:tiny_net", AdapterOptions(pretrained=False))
    backbone = build_model("timm:tiny_net", pretrained=False, embedding_size=0)
    assert torch.allclose(embedder(images), backbone(images))  # as a training run's backbone
    assert torch.allclose(embedder(images).norm(dim=1), torch.ones(3))
    for old in (lambda: load_embedder("timm/tiny_net"), lambda: backbone_spec("timm/tiny_net")):
        with pytest.raises(
            ConfigError, match="timm models are written timm:<name>, here timm:tiny_net"
        ):
            old()


def test_timm_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ConfigError, match=r"pip install bgbias\[timm\]"):
        backbone_spec("timm:resnet50")
