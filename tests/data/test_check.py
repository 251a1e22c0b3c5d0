"""`bgbias data check` (bgbias.data.check): what a dataset can hide from it."""

import json

import numpy as np
import pytest
from PIL import Image

from bgbias.cli import main
from bgbias.data.check import check_dataset


def test_masks_stored_as_0_1_are_read_as_0_255_and_pass(folder_dataset):
    mask_path = folder_dataset / "masks" / "c0" / "000.png"
    object_pixels = np.asarray(Image.open(mask_path)) > 0
    Image.fromarray(object_pixels.astype(np.uint8)).save(mask_path)  # 0/1
    assert check_dataset(folder_dataset).ok
    from bgbias.data.datasets import FolderDataset

    _, mask = FolderDataset.open(folder_dataset, "train").load(0)
    assert np.array_equal(np.asarray(mask) == 255, object_pixels)


@pytest.mark.parametrize(("value", "word"), [(0, "empty"), (255, "full")])
def test_empty_and_full_masks_are_reported(folder_dataset, value, word, capsys):
    mask_path = folder_dataset / "masks" / "c2" / "001.png"
    size = Image.open(mask_path).size
    Image.new("L", size, value).save(mask_path)
    report = check_dataset(folder_dataset)
    assert [p for p in report.problems if str(mask_path) in p and word in p], report.problems
    assert main(["data", "check", str(folder_dataset)]) == 1
    assert f"{mask_path}: mask is {word}" in capsys.readouterr().out


def test_an_image_without_a_mask_is_still_verified(folder_dataset):
    image = folder_dataset / "images" / "c4" / "001.png"
    image.write_bytes(image.read_bytes()[:-200])  # truncated
    (folder_dataset / "masks" / "c4" / "001.png").unlink()
    problems = check_dataset(folder_dataset).problems
    assert any("mask missing" in p for p in problems)
    assert any(p.startswith(f"{image}: corrupt or truncated") for p in problems), problems


@pytest.mark.parametrize("splits", [{}, {"train": [], "test": []}])
def test_a_splits_file_with_no_class_is_reported(folder_dataset, splits):
    (folder_dataset / "splits.json").write_text(json.dumps(splits))
    report = check_dataset(folder_dataset)
    assert not report.ok
    assert any("splits.json" in p and "no class" in p for p in report.problems), report.problems
