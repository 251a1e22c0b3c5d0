"""Official-format loaders on small fixture files written in each format."""

import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from bgbias.data.datasets import FolderDataset
from bgbias.data.importing import import_dataset
from bgbias.data.registry import open_split
from bgbias.errors import DataError


def _jpeg(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), (value % 256, 10, 10)).save(path)


def test_cars196_from_mat_and_archive(tmp_path):
    from scipy.io import savemat

    source = tmp_path / "official"
    paths, labels = [], []
    for i in range(196 * 2):  # two images per class, classes 1-based as in cars_annos.mat
        paths.append(f"car_ims/{i + 1:06d}.jpg")
        labels.append(i % 196 + 1)
        _jpeg(source / paths[-1], i)
    records = np.zeros(len(paths), dtype=[("relative_im_path", "O"), ("class", "O"), ("test", "O")])
    for i, (p, c) in enumerate(zip(paths, labels, strict=True)):
        records[i] = (p, np.uint8(c), np.uint8(i % 2))
    savemat(
        tmp_path / "cars_annos.mat",
        {
            "annotations": records.reshape(1, -1),
            "class_names": np.array([f"car {i}" for i in range(196)], dtype=object),
        },
    )
    with tarfile.open(tmp_path / "car_ims.tgz", "w:gz") as archive:
        archive.add(source / "car_ims", arcname="car_ims")
    summary = import_dataset(
        "cars196", [tmp_path / "car_ims.tgz", tmp_path / "cars_annos.mat"], tmp_path / "root"
    )
    assert summary["splits"] == {"train": 74, "val": 24, "test": 98}
    train = open_split("cars196", tmp_path / "root", "train")
    test = open_split("cars196", tmp_path / "root", "test")
    assert train.classes[0] == "000" and train.classes[-1] == "073" and test.classes[0] == "098"
    # image 000001.jpg is class 1 (1-based) -> label 0 of train; 000075.jpg is class 75 -> val
    first = next(s for s in train.samples if s.image.name == "000001.jpg")
    assert first.label == 0 and first.class_name == "000"
    val = open_split("cars196", tmp_path / "root", "val")
    assert next(s for s in val.samples if s.image.name == "000075.jpg").class_name == "074"
    assert len(test) == 98 * 2


def _cars_items(count=196 * 2):
    """(file name, 1-based class, devkit split): class i % 196 + 1, even images train."""
    return [
        (f"{i + 1:05d}.jpg", i % 196 + 1, "train" if i % 2 == 0 else "test") for i in range(count)
    ]


def _devkit_records(items):
    fields = [(f"bbox_{k}", "O") for k in ("x1", "y1", "x2", "y2")]
    records = np.zeros(len(items), dtype=[*fields, ("class", "O"), ("fname", "O")])
    for i, (name, label, _) in enumerate(items):
        records[i] = (np.uint8(1), np.uint8(1), np.uint8(15), np.uint8(12), np.uint8(label), name)
    return {"annotations": records.reshape(1, -1)}


def _cars_devkit(folder, items):
    """cars_train/, cars_test/, devkit/cars_train_annos.mat, devkit/cars_meta.mat and
    cars_test_annos_withlabels.mat."""
    from scipy.io import savemat

    for i, (name, _, split) in enumerate(items):
        _jpeg(folder / f"cars_{split}" / name, i)
    train = [item for item in items if item[2] == "train"]
    test = [item for item in items if item[2] == "test"]
    (folder / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(folder / "devkit" / "cars_train_annos.mat", _devkit_records(train))
    savemat(folder / "cars_test_annos_withlabels.mat", _devkit_records(test))
    class_names = np.array([f"car {i}" for i in range(196)], dtype=object).reshape(1, -1)
    savemat(folder / "devkit" / "cars_meta.mat", {"class_names": class_names})
    return folder


def _cars_car_ims(folder, items):
    """car_ims/ and cars_annos.mat (relative_im_path, class) of the same images."""
    from scipy.io import savemat

    records = np.zeros(len(items), dtype=[("relative_im_path", "O"), ("class", "O")])
    for i, (name, label, _) in enumerate(items):
        _jpeg(folder / "car_ims" / name, i)
        records[i] = (f"car_ims/{name}", np.uint8(label))
    savemat(folder / "cars_annos.mat", {"annotations": records.reshape(1, -1)})
    return folder


def test_cars196_devkit_layout_gives_the_same_classes_and_splits(tmp_path):
    items = _cars_items()
    source = _cars_devkit(tmp_path / "devkit_layout", items)
    with tarfile.open(tmp_path / "cars_train.tgz", "w:gz") as archive:
        archive.add(source / "cars_train", arcname="cars_train")
    sources = [
        tmp_path / "cars_train.tgz",
        source / "cars_test",  # a folder: linked
        source / "devkit",
        source / "cars_test_annos_withlabels.mat",
    ]
    summary = import_dataset("cars196", sources, tmp_path / "root")
    assert summary["layout"].startswith("devkit")
    assert summary["images"] == len(items)
    assert summary["splits"] == {"train": 74, "val": 24, "test": 98}
    car_ims = import_dataset("cars196", [_cars_car_ims(tmp_path / "ims", items)], tmp_path / "r2")
    assert car_ims["layout"] == "car_ims + cars_annos.mat"
    for split in ("train", "val", "test"):
        devkit, reference = (
            open_split("cars196", r, split) for r in (tmp_path / "root", tmp_path / "r2")
        )
        assert devkit.classes == reference.classes and len(devkit) == len(reference)
        by_name = {s.image.name: s.class_name for s in reference.samples}
        assert {s.image.name: s.class_name for s in devkit.samples} == by_name
    train = open_split("cars196", tmp_path / "root", "train")
    assert train.classes[0] == "000" and train.classes[-1] == "073"
    assert next(s for s in train.samples if s.image.name == "00197.jpg").class_name == "000"


def test_cars196_mixed_or_partial_layouts_name_what_is_missing(tmp_path):
    source = _cars_devkit(tmp_path / "devkit_layout", _cars_items(20))
    (tmp_path / "partial").mkdir()
    shutil.copytree(source / "devkit", tmp_path / "partial" / "devkit")
    shutil.copytree(source / "cars_train", tmp_path / "partial" / "cars_train")
    with pytest.raises(
        DataError,
        match=r"devkit layout needs cars_test/ \(cars_test.tgz\), cars_test_annos_withlabels.mat",
    ):
        import_dataset("cars196", [tmp_path / "partial"], tmp_path / "r1")
    # devkit annotations with the car_ims layout's images
    mixed = tmp_path / "mixed"
    shutil.copytree(source / "devkit", mixed / "devkit")
    _jpeg(mixed / "car_ims" / "000001.jpg", 1)
    with pytest.raises(DataError, match=r"car_ims/ holds the other layout's images"):
        import_dataset("cars196", [mixed], tmp_path / "r2")
    # cars_annos.mat with the devkit layout's images
    from scipy.io import savemat

    other = tmp_path / "other"
    shutil.copytree(source / "cars_train", other / "cars_train")
    savemat(other / "cars_annos.mat", {"annotations": np.zeros(1, dtype=[("class", "O")])})
    with pytest.raises(DataError, match=r"no car_ims/ folder .*cars_train are the devkit layout"):
        import_dataset("cars196", [other], tmp_path / "r3")


def test_cub200_folder_is_linked_not_copied(tmp_path):
    source = tmp_path / "CUB_200_2011"
    for c in range(200):
        for k in range(2):
            _jpeg(source / "images" / f"{c + 1:03d}.Bird_{c}" / f"img_{k}.jpg", c)
    summary = import_dataset("cub200", [source], tmp_path / "root")
    assert summary == {
        "dataset": "cub200",
        "layout": "CUB_200_2011",
        "images": 400,
        "splits": {"train": 75, "val": 25, "test": 100},
    }
    assert (tmp_path / "root" / "images" / "CUB_200_2011").is_symlink()
    train = open_split("cub200", tmp_path / "root", "train")
    assert train.classes[:2] == ["001.Bird_0", "002.Bird_1"] and train.classes[-1] == "075.Bird_74"
    test = open_split("cub200", tmp_path / "root", "test")
    assert test.classes[0] == "101.Bird_100" and len(test) == 200


def test_sop_text_files(tmp_path):
    base = tmp_path / "Stanford_Online_Products"
    lines = {"Ebay_train.txt": [], "Ebay_test.txt": []}
    image_id = 1
    for class_id in (1, 2, 8489, 8490, 11318):  # 1-based; 0-based 8488 is the last train class
        for k in range(2):
            path = f"bicycle_final/{class_id}_{k}.JPG"
            _jpeg(base / path, class_id)
            lines["Ebay_train.txt"].append(f"{image_id} {class_id} 1 {path}")
            image_id += 1
    for class_id in (11319, 11320):
        for k in range(3):
            path = f"chair_final/{class_id}_{k}.JPG"
            _jpeg(base / path, class_id)
            lines["Ebay_test.txt"].append(f"{image_id} {class_id} 2 {path}")
            image_id += 1
    for name, rows in lines.items():
        (base / name).write_text("image_id class_id super_class_id path\n" + "\n".join(rows) + "\n")
    import_dataset("sop", [tmp_path], tmp_path / "root")
    open_kwargs = {"check_sizes": False}
    assert open_split("sop", tmp_path / "root", "train", **open_kwargs).classes == [
        "1",
        "2",
        "8489",
    ]
    assert open_split("sop", tmp_path / "root", "val", **open_kwargs).classes == ["8490", "11318"]
    test = open_split("sop", tmp_path / "root", "test", **open_kwargs)
    assert test.classes == ["11319", "11320"] and len(test) == 6
    with pytest.raises(DataError, match="train split has 3 classes, Stanford Online Products"):
        open_split("sop", tmp_path / "root", "train")


def test_wrong_archive_layout_names_what_is_expected(tmp_path):
    (tmp_path / "junk").mkdir()
    _jpeg(tmp_path / "junk" / "a.jpg", 1)
    with pytest.raises(
        DataError, match="no CUB_200_2011/images inside; cub200 expects CUB_200_2011.tgz"
    ):
        import_dataset("cub200", [tmp_path / "junk"], tmp_path / "root")
    with pytest.raises(DataError, match="not found"):
        import_dataset("sop", [tmp_path / "missing.zip"], tmp_path / "root2")


def test_imported_dataset_needs_masks_for_bgaugment(tmp_path):
    source = tmp_path / "CUB_200_2011"
    for c in range(200):
        _jpeg(source / "images" / f"{c + 1:03d}.B" / "x.jpg", c)
    import_dataset("cub200", [source], tmp_path / "root")
    with pytest.raises(DataError, match="bgbias masks .*root/images .*root/masks"):
        FolderDataset.open(tmp_path / "root", "train", require_masks=True)
    shutil.rmtree(tmp_path / "root")
