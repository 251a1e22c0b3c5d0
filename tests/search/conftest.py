"""A small catalogue (4 classes x 5 images, with masks) and a checkpoint to index it with."""

from __future__ import annotations

import pytest

from tests.helpers import write_checkpoint, write_folder_dataset


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue") / "shop"
    classes = {f"c{i}": 5 for i in range(4)}
    splits = {"train": ["c0", "c1"], "test": ["c2", "c3"]}
    return write_folder_dataset(root, classes, size=(80, 64), splits=splits, seed=7)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run") / "best.ckpt", seed=1)


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, catalogue, checkpoint):
    from bgbias.search.build import build_index

    out = tmp_path_factory.mktemp("indexes") / "shop-index"
    build_index(str(checkpoint), catalogue, out, device="cpu", progress=False, chunk_size=8)
    return out


@pytest.fixture(scope="session")
def second_index(tmp_path_factory, catalogue):
    """The same catalogue indexed by another model (a second checkpoint)."""
    from bgbias.search.build import build_index

    model = write_checkpoint(tmp_path_factory.mktemp("run2") / "bgaugment.ckpt", seed=2)
    out = tmp_path_factory.mktemp("indexes2") / "shop-bgaugment"
    build_index(str(model), catalogue, out, device="cpu", progress=False)
    return out


@pytest.fixture(scope="session")
def remover(tmp_path_factory):
    """Background removal with an ONNX model of U2Net's interface (no 176 MB download)."""
    from bgbias.masks.predictors import OnnxU2NetPredictor
    from bgbias.removal import BackgroundRemover
    from tests.helpers import write_onnx_masker

    model = write_onnx_masker(tmp_path_factory.mktemp("masker") / "masker.onnx")
    return BackgroundRemover(OnnxU2NetPredictor(model), "test-masker")


@pytest.fixture(scope="session")
def service(built_index, second_index, remover):
    from bgbias.search.index import SearchIndex
    from bgbias.search.service import SearchService, ServeOptions

    indexes = [SearchIndex.load(built_index), SearchIndex.load(second_index)]
    options = ServeOptions(max_upload_bytes=300_000, max_k=50, device="cpu")
    return SearchService(indexes, options, remover=remover)
