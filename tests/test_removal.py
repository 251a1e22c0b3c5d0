"""Test-time background removal, and `bgbias evaluate --query-masking` (the protocol)."""

import json

import pytest
import torch
from PIL import Image

from bgbias.adapters import load_embedder
from bgbias.backbones.small_cnn import RECIPE
from bgbias.cli import main
from bgbias.evaluation import evaluate_model
from bgbias.masks.predictors import OnnxU2NetPredictor
from bgbias.removal import BackgroundRemover, MeasuredEmbedder
from tests.helpers import write_checkpoint, write_onnx_masker


class Recording(BackgroundRemover):
    """Remembers every batch it removed backgrounds from."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[torch.Tensor] = []

    def masks(self, rgb01):
        self.seen.append(rgb01.clone())
        return super().masks(rgb01)


@pytest.fixture(scope="module")
def masker(tmp_path_factory):
    return OnnxU2NetPredictor(write_onnx_masker(tmp_path_factory.mktemp("m") / "masker.onnx"))


def test_removal_keeps_the_foreground_and_fills_the_rest(masker):
    rgb = torch.zeros(1, 3, 64, 64)
    rgb[:, :, 16:48, 16:48] = 0.9  # a bright object on black
    removed, masks = BackgroundRemover(masker, "m", fill="white")(rgb, RECIPE)
    assert masks.shape == (1, 1, 64, 64)
    assert masks[0, 0, 32, 32] > 0.9 and masks[0, 0, 2, 2] < 0.1
    assert torch.allclose(removed[0, :, 32, 32], rgb[0, :, 32, 32], atol=0.1)
    assert torch.allclose(removed[0, :, 2, 2], torch.ones(3), atol=0.1)
    mean_fill = BackgroundRemover(masker, "m").fill_color(RECIPE)
    assert torch.allclose(RECIPE.normalization(mean_fill), torch.zeros(3, 1, 1), atol=1e-6)


def test_one_image_and_batch_removal_agree(masker):
    rgb = torch.rand(1, 3, 64, 64)
    rgb[:, :, 20:40, 10:50] = 0.95
    remover = BackgroundRemover(masker, "m")
    batch, _ = remover((rgb * 255).round() / 255, RECIPE)
    image = Image.fromarray((rgb[0] * 255).round().byte().permute(1, 2, 0).numpy())
    single = torch.from_numpy(remover.remove(image, RECIPE)).permute(2, 0, 1) / 255
    assert torch.allclose(single, batch[0], atol=1e-5)


def test_measured_embedder_removes_then_embeds_and_times_both(masker, tmp_path):
    embedder = load_embedder(str(write_checkpoint(tmp_path / "m.ckpt")))
    remover = BackgroundRemover(masker, "m")
    measured = MeasuredEmbedder(embedder, remover)
    rgb = torch.rand(3, 3, 64, 64)
    images = RECIPE.normalization(rgb)
    removed, _ = remover(RECIPE.normalization.inverse(images).clamp(0, 1), RECIPE)
    expected = embedder(RECIPE.normalization(removed))
    assert torch.allclose(measured(images), expected, atol=1e-5)
    cost = measured.cost()
    assert cost["images"] == 3 and cost["mask_model"] == "m"
    assert cost["ms_per_image"]["mask"] > 0 and cost["ms_per_image"]["embed"] > 0
    assert measured.describe()["test_time_removal"] == {"mask_model": "m", "fill": "mean"}
    assert measured.label == "ArcFace + test-time removal (m)"
    plain = MeasuredEmbedder(embedder)
    assert torch.equal(plain(images), embedder(images)) and plain.label == "ArcFace"


def test_query_masking_protocol_masks_every_embedded_image(masker, folder_dataset, tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run" / "best.ckpt")
    remover = Recording(masker, "fake")
    common = dict(dataset="folder", root=folder_dataset, repeats=2, backgrounds="procedural")
    result, path = evaluate_model(
        str(checkpoint), device="cpu", progress=False, query_masking=remover, **common
    )
    assert path == tmp_path / "run" / "best.test.query-masking-fake.eval.json"
    assert json.loads(path.read_text())["inference"] == result["inference"]
    images = result["images"]
    # clean once and each repeat with replaced backgrounds: the mask model saw all of them,
    # the replaced ones as replaced (it predicts on what the model would see)
    seen = torch.cat(remover.seen)
    assert len(seen) == images * 3
    clean, replaced = seen[:images], seen[images : 2 * images]
    assert not torch.allclose(clean, replaced)
    assert result["inference"]["ms_per_image"]["mask"] > 0
    assert result["inference"]["images"] == images * 3
    assert result["model"]["label"] == "ArcFace + test-time removal (fake)"
    plain, plain_path = evaluate_model(str(checkpoint), device="cpu", progress=False, **common)
    assert plain_path.name == "best.test.eval.json"
    assert plain["inference"]["mask_model"] is None
    assert plain["inference"]["ms_per_image"]["mask"] < result["inference"]["ms_per_image"]["mask"]
    assert plain["clean"] != result["clean"] or plain["corrupted"] != result["corrupted"]


def test_query_masking_without_the_mask_model_says_how_to_get_it(
    folder_dataset, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "none"))
    checkpoint = write_checkpoint(tmp_path / "best.ckpt")
    argv = ["evaluate", str(checkpoint), "--dataset", "folder", "--root", str(folder_dataset)]
    assert main([*argv, "--query-masking", "--device", "cpu"]) == 1
    assert "bgbias mask-weights fetch u2netp" in capsys.readouterr().err
