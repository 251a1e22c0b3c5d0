"""Catalogues in every layout: ids, paths and labels."""

import pytest
from PIL import Image

from bgbias.errors import DataError, DataProblems
from bgbias.search.catalogue import read_catalogue


def image(path, color=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), color).save(path)
    return path


def test_dataset_folder_gives_relative_ids_and_class_labels(catalogue):
    cat = read_catalogue(catalogue)
    assert cat.layout == "dataset" and len(cat.items) == 20
    first = cat.items[0]
    assert first.id == "c0/000.png" and first.label == "c0"
    assert first.path == catalogue / "images" / "c0" / "000.png"
    test_only = read_catalogue(catalogue, split="test")
    assert {item.label for item in test_only.items} == {"c2", "c3"}
    with pytest.raises(DataError, match="no split 'val'"):
        read_catalogue(catalogue, split="val")


def test_folder_tree_and_flat_folder(tmp_path):
    image(tmp_path / "tree" / "shoes" / "a.jpg")
    image(tmp_path / "tree" / "shoes" / "deep" / "b.png")
    image(tmp_path / "tree" / "loose.png")
    (tmp_path / "tree" / "notes.txt").write_text("not an image")
    cat = read_catalogue(tmp_path / "tree")
    assert cat.layout == "folder"
    assert [(i.id, i.label) for i in cat.items] == [
        ("loose.png", None),
        ("shoes/a.jpg", "shoes"),
        ("shoes/deep/b.png", "shoes"),
    ]


def test_csv_with_ids_labels_and_relative_paths(tmp_path):
    image(tmp_path / "pics" / "1.png")
    image(tmp_path / "pics" / "2.png")
    (tmp_path / "list.csv").write_text("id,path,label\nsku-2,pics/2.png,\nsku-1,pics/1.png,bag\n")
    cat = read_catalogue(tmp_path / "list.csv")
    assert cat.layout == "csv"
    assert [(i.id, i.label) for i in cat.items] == [("sku-1", "bag"), ("sku-2", None)]
    assert cat.items[0].path == (tmp_path / "pics" / "1.png").resolve()
    (tmp_path / "paths.csv").write_text("path\npics/1.png\n")
    assert read_catalogue(tmp_path / "paths.csv").items[0].id == "pics/1.png"


def test_catalogue_problems_are_named(tmp_path):
    image(tmp_path / "pics" / "1.png")
    (tmp_path / "missing.csv").write_text("path\npics/1.png\npics/nope.png\n")
    with pytest.raises(DataProblems, match="nope.png: image file not found"):
        read_catalogue(tmp_path / "missing.csv")
    (tmp_path / "dupes.csv").write_text("id,path\na,pics/1.png\na,pics/1.png\n")
    with pytest.raises(DataError, match="id 'a' is used twice"):
        read_catalogue(tmp_path / "dupes.csv")
    (tmp_path / "nopath.csv").write_text("file,label\npics/1.png,x\n")
    with pytest.raises(DataError, match="must name a 'path' column"):
        read_catalogue(tmp_path / "nopath.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        read_catalogue(tmp_path / "empty")
    with pytest.raises(DataError, match="catalogue not found"):
        read_catalogue(tmp_path / "absent")
