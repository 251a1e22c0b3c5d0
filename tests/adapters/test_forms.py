"""Every model form gives the model's own embeddings, its preprocessing, and clear errors."""

import importlib.util
import json
import warnings

import pytest
import torch
from PIL import Image
from torch import nn

from bgbias.adapters import ADAPTERS, AdapterOptions, load_embedder
from bgbias.cli import main
from bgbias.errors import ConfigError, ModelOutputError


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ).eval()


def export_onnx(model: nn.Module, path, size: int = 32, dynamic: bool = True, props=None):
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(
            model,
            (torch.randn(1, 3, size, size),),
            str(path),
            input_names=["images"],
            output_names=["embeddings"],
            dynamic_axes={"images": {0: "batch"}} if dynamic else None,
            dynamo=False,
        )
    if props:
        graph = onnx.load(str(path))
        onnx.helper.set_model_props(graph, props)
        onnx.save(graph, str(path))
    return path


def test_onnx_gives_the_models_embeddings_and_reads_its_preprocessing(tmp_path):
    model = tiny_model()
    path = export_onnx(
        model, tmp_path / "m.onnx", props={"mean": "0.5,0.5,0.5", "std": "[0.25, 0.25, 0.25]"}
    )
    embedder = load_embedder(f"onnx:{path}")
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
    assert torch.allclose(embedder(images), expected, atol=1e-4)
    recipe = embedder.recipe
    assert recipe.crop == 32 and recipe.resize == round(32 / 0.875)  # fixed H, W of the file
    assert recipe.normalization.mean == (127.5,) * 3 and recipe.normalization.std == (63.75,) * 3
    assert embedder.module is None and embedder.describe()["form"] == "onnx"


def test_onnx_with_a_fixed_batch_of_one_embeds_any_batch(tmp_path):
    model = tiny_model(1)
    embedder = load_embedder(f"onnx:{export_onnx(model, tmp_path / 'm.onnx', dynamic=False)}")
    assert embedder.fixed_batch == 1
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(embedder(images), model(images), atol=1e-4)


def test_onnx_input_size_option_must_fit_a_fixed_input(tmp_path):
    path = export_onnx(tiny_model(), tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="fixed at 32 px"):
        load_embedder(f"onnx:{path}", AdapterOptions(input_size=64))
    recipe = load_embedder(f"onnx:{path}", AdapterOptions(mean=(0, 0, 0), std=(1, 1, 1))).recipe
    assert recipe.normalization.mean == (0, 0, 0) and recipe.normalization.std == (255,) * 3


def test_torchscript_gives_the_models_embeddings_and_gradients(tmp_path):
    model = tiny_model(2)
    traced = torch.jit.trace(model, torch.randn(1, 3, 40, 40))
    extra = {"preprocessing.json": json.dumps({"input_size": 40, "mean": [0.4] * 3})}
    torch.jit.save(traced, str(tmp_path / "m.pt"), _extra_files=extra)
    embedder = load_embedder(f"torchscript:{tmp_path / 'm.pt'}")
    images = torch.randn(4, 3, 40, 40)
    with torch.no_grad():
        assert torch.allclose(embedder(images), model(images), atol=1e-4)
    assert embedder.recipe.crop == 40 and embedder.recipe.normalization.mean == (102.0,) * 3
    assert embedder.recipe.normalization.std == pytest.approx(
        (0.229 * 255, 0.224 * 255, 0.225 * 255)
    )
    x = images.requires_grad_(True)
    embedder.module(x).sum().backward()  # attention scores can differentiate it
    assert x.grad is not None and x.grad.abs().sum() > 0


class WrongShape(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3), keepdim=True)  # (B, 3, 1, 1)


class NotFinite(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :4] * torch.tensor(float("nan"))


@pytest.mark.parametrize("form", ["onnx", "torchscript"])
def test_wrong_output_shape_and_nan_embeddings_are_model_output_errors(tmp_path, form):
    for name, bad, message in (
        ("shape", WrongShape(), r"output must be \(batch, dim\) = \(2, D\), got \(2, 3, 1, 1\)"),
        ("nan", NotFinite(), "NaN or inf"),
    ):
        path = tmp_path / f"{name}.{form}"
        if form == "onnx":
            export_onnx(bad, path, size=16)
        else:
            torch.jit.save(torch.jit.trace(bad, torch.randn(1, 3, 16, 16)), str(path))
        embedder = load_embedder(f"{form}:{path}")
        with pytest.raises(ModelOutputError, match=message):
            embedder(torch.randn(2, 3, 16, 16))


def test_an_unknown_form_lists_every_form():
    with pytest.raises(ConfigError) as info:
        load_embedder("resnet9000")
    message = str(info.value)
    assert "matches no model form" in message and "\n" not in message
    for name in ADAPTERS:
        assert ADAPTERS.get(name).syntax in message
    for syntax in ("onnx:<file.onnx>", "torchscript:<file.pt>", "timm:<name>", "hf:", "python:"):
        assert syntax in message


def test_a_model_file_is_recognised_by_its_suffix(tmp_path, capsys):
    model = tiny_model()
    onnx_file = export_onnx(model, tmp_path / "m.ONNX")
    script_file = tmp_path / "m.pt"
    torch.jit.save(torch.jit.trace(model, torch.randn(1, 3, 32, 32)), str(script_file))
    images = torch.randn(3, 3, 32, 32)
    for path, form in ((onnx_file, "onnx"), (script_file, "torchscript")):
        by_suffix, by_form = load_embedder(str(path)), load_embedder(f"{form}:{path}")
        assert by_suffix.form == form
        assert torch.allclose(by_suffix(images), by_form(images), atol=1e-5)
    catalogue = tmp_path / "pics"
    catalogue.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (60 * i, 10, 10)).save(catalogue / f"{i}.png")
    out = tmp_path / "index"
    assert main(["index", str(onnx_file), str(catalogue), "--out", str(out), "-q"]) == 0
    assert json.loads((out / "manifest.json").read_text())["model"]["form"] == "onnx"
    assert main(["list", "model-forms"]) == 0
    assert "[files: *.onnx]" in capsys.readouterr().out
    keras = tmp_path / "m.h5"
    keras.write_bytes(b"not a model bgbias reads")
    with pytest.raises(ConfigError) as info:
        load_embedder(str(keras))
    message = str(info.value)
    assert message.startswith(f"model file {keras}: suffix '.h5' names no model form")
    assert ".ckpt (checkpoint)" in message and ".onnx (onnx)" in message and "\n" not in message


def test_missing_model_files_are_one_line_errors(tmp_path):
    for form in ("onnx", "torchscript"):
        with pytest.raises(ConfigError, match="model file not found"):
            load_embedder(f"{form}:{tmp_path / 'nothing'}")
    photo = tmp_path / "photo.jpg"  # a file that is no model at all
    Image.new("RGB", (8, 8)).save(photo)
    for form, message in (
        ("onnx", "not a loadable ONNX model"),
        ("torchscript", "not a loadable TorchScript file"),
    ):
        with pytest.raises(ConfigError, match=message) as info:
            load_embedder(f"{form}:{photo}")
        assert str(photo) in str(info.value) and "\n" not in str(info.value)
        assert len(str(info.value)) < 300  # the runtime's gist, not its paragraphs of advice


def test_python_factory_with_its_preprocessing(tmp_path):
    (tmp_path / "my_models.py").write_text(
        "import torch.nn as nn\n"
        "def make():\n"
        "    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
        "    return net, {'input_size': 48, 'mean': (0.5, 0.5, 0.5), 'std': (0.5, 0.5, 0.5)}\n"
        "def broken():\n"
        "    return 'not a model'\n"
    )
    embedder = load_embedder(f"python:{tmp_path / 'my_models.py'}:make")
    assert embedder.recipe.crop == 48 and embedder.recipe.normalization.mean == (127.5,) * 3
    assert embedder(torch.randn(2, 3, 48, 48)).shape == (2, 4)
    with pytest.raises(ConfigError, match="must return an nn.Module"):
        load_embedder(f"python:{tmp_path / 'my_models.py'}:broken")
    with pytest.raises(ConfigError, match="has no callable 'absent'"):
        load_embedder(f"python:{tmp_path / 'my_models.py'}:absent")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        load_embedder("python:no_such_module_xyz:make")


TORCHVISION_REASON = "timm needs torchvision, which does not import beside torch 2.13.0 here"


def _importable(name: str) -> bool:
    if importlib.util.find_spec(name) is None:
        return False
    try:
        __import__(name)
    except Exception:  # noqa: BLE001 - a broken torchvision underneath
        return False
    return True


@pytest.mark.skipif(_importable("timm"), reason="timm imports here: the error path cannot happen")
def test_timm_without_timm_says_how_to_install_it():
    with pytest.raises(
        ConfigError, match=r"timm:<name> models need timm \(`pip install bgbias\[timm\]`\)"
    ):
        load_embedder("timm:resnet18")


@pytest.mark.skipif(not _importable("timm"), reason=TORCHVISION_REASON)
def test_timm_model_with_a_local_weight_file(tmp_path):
    import timm

    reference = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    embedder = load_embedder(
        "timm:resnet18", AdapterOptions(weights=str(tmp_path / "resnet18.pth"))
    )
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():  # L2-normalised pooled features, as the timm:resnet18 backbone's
        expected = torch.nn.functional.normalize(reference(images), dim=-1)
        assert torch.allclose(embedder(images), expected, atol=1e-4)
    assert embedder.recipe.crop == 224 and embedder.recipe.resize == 256


@pytest.mark.skipif(
    _importable("open_clip"), reason="open_clip imports here: the error path cannot happen"
)
def test_open_clip_without_open_clip_says_how_to_install_it():
    with pytest.raises(ConfigError, match=r"pip install bgbias\[open-clip\]"):
        load_embedder("open_clip:ViT-B-32:openai")


def _save_hf(tmp_path, kind: str):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    if kind == "dinov2":
        model = transformers.Dinov2Model(
            transformers.Dinov2Config(image_size=56, patch_size=14, **common)
        )
        processor = transformers.BitImageProcessor(
            size={"shortest_edge": 64},
            crop_size={"height": 56, "width": 56},
            do_center_crop=True,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        )
    else:
        model = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, **common))
        processor = transformers.ViTImageProcessor(
            size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        )
    folder = tmp_path / kind
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model.eval(), folder


@pytest.mark.parametrize(
    "kind, size, resize, mean", [("dinov2", 56, 64, 0.485 * 255), ("vit", 32, 32, 127.5)]
)
def test_hf_local_folder_gives_the_models_pooled_output(tmp_path, kind, size, resize, mean):
    model, folder = _save_hf(tmp_path, kind)
    embedder = load_embedder(f"hf:{folder}")
    images = torch.randn(3, 3, size, size)
    with torch.no_grad():
        expected = model(pixel_values=images).pooler_output
    assert torch.allclose(embedder(images), expected, atol=1e-4)
    assert embedder.recipe.crop == size and embedder.recipe.resize == resize
    assert embedder.recipe.normalization.mean[0] == pytest.approx(mean)
    assert embedder.module is not None  # differentiable: attention scores work


def test_hf_unloadable_folder_is_a_one_line_error(tmp_path):
    pytest.importorskip("transformers")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="could not load a transformers model") as info:
        load_embedder(f"hf:{tmp_path / 'empty'}")
    assert "\n" not in str(info.value)
