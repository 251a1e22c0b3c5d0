"""A model `bgbias export` wrote reads back as `onnx:FILE` / `torchscript:FILE` with its exact
preprocessing from the file's metadata: no --input-size/--mean/--std needed."""

import numpy as np
import pytest
import torch
from PIL import Image

from bgbias.adapters import AdapterOptions, load_embedder
from bgbias.adapters.base import override_recipe
from bgbias.cli import main
from bgbias.data.transforms import Normalization, PairedTransform, Recipe
from tests.helpers import write_checkpoint


def photos(n: int = 5) -> list[Image.Image]:
    """Odd-sized photos, so resize and centre crop both matter."""
    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 256, (72 + 6 * i, 90, 3), np.uint8)) for i in range(n)]


def embed_photos(embedder, images: list[Image.Image]) -> torch.Tensor:
    transform = PairedTransform(embedder.recipe, train=False)
    return embedder(torch.stack([transform(image, None)[0] for image in images]))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run") / "best.ckpt", seed=5)


@pytest.mark.parametrize("form, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_an_exported_checkpoint_gives_its_embeddings_without_preprocessing_options(
    checkpoint, tmp_path, form, suffix
):
    out = tmp_path / f"model{suffix}"
    assert main(["export", str(checkpoint), str(out), "-q"]) == 0
    source = load_embedder(str(checkpoint))
    exported = load_embedder(f"{form}:{out}")  # no AdapterOptions: the file says it all
    # the generated recipe (64 px whole, mean 127.5, std 64), not the 224 px ImageNet default
    assert exported.recipe == source.recipe
    assert exported.describe()["file_exported_by"].startswith("bgbias ")
    images = photos()
    expected, got = embed_photos(source, images), embed_photos(exported, images)
    assert got.shape == expected.shape == (5, 16)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_options_override_an_exported_recipe_in_its_channel_order():
    bgr = Recipe("caffe", 256, 224, Normalization("BGR", (104.0, 117.0, 128.0), (1.0, 1.0, 1.0)))
    changed = override_recipe(bgr, AdapterOptions(input_size=112, mean=(0.1, 0.2, 0.3)))
    assert (changed.resize, changed.crop) == (128, 112)
    assert changed.normalization.channels == "BGR"
    assert changed.normalization.mean == pytest.approx((0.3 * 255, 0.2 * 255, 0.1 * 255))
    assert changed.normalization.std == (1.0, 1.0, 1.0)  # not given: the file's
    assert override_recipe(bgr, AdapterOptions()) == bgr
