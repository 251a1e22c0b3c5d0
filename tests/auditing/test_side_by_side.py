"""The side-by-side retrieval figure of `bgbias demo`."""

import shutil

import pytest
from PIL import Image

from bgbias.adapters import AdapterOptions
from bgbias.auditing.side_by_side import compare_retrievals
from bgbias.errors import ConfigError
from tests.helpers import register_background_set, write_folder_dataset


def test_same_queries_top_k_of_each_model_side_by_side(tmp_path):
    root = write_folder_dataset(
        tmp_path / "ds", {"a": 4, "b": 4, "c": 4}, size=(64, 64), splits={"test": ["a", "b", "c"]}
    )
    options = AdapterOptions(pretrained=False)
    path = compare_retrievals(
        ["small_cnn", "small_cnn"],
        root,
        tmp_path / "r.png",
        split="test",
        queries=3,
        top_k=4,
        options=options,
    )
    with Image.open(path) as figure:
        assert figure.width > 2 * figure.height  # query + two models' top-4, three rows


def test_models_with_different_input_sizes_or_no_labels_are_refused(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    options = AdapterOptions(pretrained=False)
    with pytest.raises(ConfigError, match="share one input size"):
        compare_retrievals(["small_cnn", "bninception"], root, tmp_path / "r.png", options=options)
    flat = tmp_path / "flat"
    shutil.copytree(root / "images" / "a", flat)
    with pytest.raises(ConfigError, match="needs class labels"):
        compare_retrievals(["small_cnn"], flat, tmp_path / "r.png", options=options)


def test_the_retrieval_figure_takes_a_named_background_set(tmp_path, monkeypatch):
    from bgbias.data.background_sets import fetch_background_set

    register_background_set(tmp_path, monkeypatch, "paper", "a stand-in for the paper's set")
    fetch_background_set("paper", tmp_path / "copy", progress=False)
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    options = AdapterOptions(pretrained=False)
    path = compare_retrievals(
        ["small_cnn"], root, tmp_path / "r.png", backgrounds="paper", queries=2, options=options
    )
    assert path.is_file()
