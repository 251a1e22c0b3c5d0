"""`bgbias masks` never mixes two models' masks in one folder, and never masks its own masks."""

import json

import pytest

from bgbias.errors import BgbiasError
from bgbias.masks.generate import generate_masks
from bgbias.masks.predictors import OnnxU2NetPredictor
from tests.helpers import write_onnx_masker
from tests.masks.test_generate import make_images


@pytest.fixture
def predictor(tmp_path):
    return OnnxU2NetPredictor(write_onnx_masker(tmp_path / "masker.onnx"))


def test_the_model_is_recorded_and_another_model_is_refused(tmp_path, predictor):
    images = make_images(tmp_path / "images", count=2)
    masks = tmp_path / "masks"
    generate_masks(images, masks, model="grabcut", predictor=predictor, progress=False)
    assert json.loads((masks / "masks-model.json").read_text())["model"] == "grabcut"
    before = {p: p.stat().st_mtime_ns for p in masks.rglob("*.png")}
    with pytest.raises(BgbiasError, match=f"{masks}: holds grabcut masks.*--model u2netp"):
        generate_masks(images, masks, model="u2netp", predictor=predictor, progress=False)
    assert {p: p.stat().st_mtime_ns for p in masks.rglob("*.png")} == before
    again = generate_masks(images, masks, model="grabcut", predictor=predictor, progress=False)
    assert again.already_done == 2  # the same model resumes


def test_a_folder_from_before_the_record_is_judged_by_its_report(tmp_path, predictor):
    images = make_images(tmp_path / "images", count=2)
    masks = tmp_path / "masks"
    generate_masks(images, masks, model="grabcut", predictor=predictor, progress=False)
    (masks / "masks-model.json").unlink()  # a folder written by an older bgbias
    with pytest.raises(BgbiasError, match="holds grabcut masks"):
        generate_masks(images, masks, model="u2net", predictor=predictor, progress=False)


def test_a_mask_folder_inside_the_image_folder_is_not_masked(tmp_path, predictor):
    images = make_images(tmp_path / "photos", count=4)
    masks = images / "masks"
    first = generate_masks(images, masks, predictor=predictor, progress=False)
    second = generate_masks(images, masks, predictor=predictor, progress=False)
    assert first.images == second.images == 4
    assert second.written == 0 and second.already_done == 4
    assert not (masks / "masks").exists()
    other = tmp_path / "elsewhere"  # another run's masks under the images are not images either
    assert generate_masks(images, other, predictor=predictor, progress=False).images == 4


def test_an_unknown_model_stops_before_the_mask_folder_is_touched(tmp_path):
    from bgbias.errors import ConfigError

    images = make_images(tmp_path / "images", count=2)
    masks = tmp_path / "masks"
    with pytest.raises(ConfigError, match="nosuchmodel"):
        generate_masks(images, masks, model="nosuchmodel", progress=False)
    assert not masks.exists()  # no folder, no record naming a model that does not exist
