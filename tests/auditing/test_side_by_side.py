"""The side-by-side retrieval figure of `bgbias demo`."""

import shutil

import numpy as np
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from bgbias.adapters import AdapterOptions
from bgbias.auditing.figures import MARK_COLOURS
from bgbias.auditing.side_by_side import compare_retrievals
from bgbias.errors import ConfigError
from tests.helpers import register_background_set, write_folder_dataset

CLASS_COLOURS = {"a": 0, "b": 1, "c": 2}  # the channel each class's object is drawn in


def write_coloured_classes(root):
    """Three classes whose objects are pure red, green or blue on a dark background, so that a
    figure cell's class can be read from its pixels."""
    write_folder_dataset(
        root, {c: 4 for c in CLASS_COLOURS}, size=(64, 64), splits={"test": ["a", "b", "c"]}
    )
    for class_name, channel in CLASS_COLOURS.items():
        for path in (root / "images" / class_name).glob("*.png"):
            mask = np.asarray(Image.open(root / "masks" / class_name / path.name)) > 0
            pixels = np.asarray(Image.open(path)).copy()
            pixels[mask] = 0
            pixels[mask, channel] = 255
            Image.fromarray(pixels).save(path)
    return root


def class_shown(ax) -> str:
    """The class of the gallery image a figure cell shows, from its object's colour."""
    pixels = np.asarray(ax.get_images()[0].get_array(), dtype=float)
    bright = pixels[pixels.max(axis=-1) > 150]
    channel = int(bright.mean(axis=0).argmax())
    return next(name for name, c in CLASS_COLOURS.items() if c == channel)


def test_same_queries_top_k_of_each_model_side_by_side(tmp_path, drawn_figures):
    root = write_coloured_classes(tmp_path / "ds")
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
    assert path.stat().st_size > 0
    figure = drawn_figures["r.png"]
    columns = 1 + 2 * (1 + 4)  # the query, then per model a gap and its top-4
    assert len(figure.axes) == 3 * columns
    rows = [figure.axes[r * columns : (r + 1) * columns] for r in range(3)]
    titles = [rows[0][1 + m * 5 + 1 + 1].get_title() for m in range(2)]
    assert [t.split("\n")[0][-4:] for t in titles] == [" (1)", " (2)"]  # one model twice
    for m, title in enumerate(titles):
        right = total = 0
        for row in rows:
            query_class = row[0].get_xlabel().split("\n")[0]
            for ax in row[1 + m * 5 + 1 : 1 + m * 5 + 5]:
                same = class_shown(ax) == query_class
                frame = {to_hex(spine.get_edgecolor()) for spine in ax.spines.values()}
                # light blue: the result is of the query's class; orange: it is not
                assert frame == {MARK_COLOURS["class" if same else "wrong"].lower()}
                right, total = right + same, total + 1
        assert title.split("\n")[1] == f"top-4: {right / total:.0%} right class"
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["frame: same class", "frame: wrong"]


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
