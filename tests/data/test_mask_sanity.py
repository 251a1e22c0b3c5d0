"""Suspect masks are found by their shape, listed in a JSON and shown on a contact sheet."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from bgbias.cli import main
from bgbias.data.check import check_dataset
from bgbias.data.mask_sanity import SanityLimits, mask_problems
from tests.helpers import write_folder_dataset


def blob(h=60, w=80, top=15, left=20, height=30, width=40) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[top : top + height, left : left + width] = 255
    return mask


def codes(problems: list[str]) -> list[str]:
    return [p.split(":")[0] for p in problems]


def test_a_centred_object_is_not_suspect():
    assert mask_problems(blob()) == []
    assert mask_problems(blob(), mirrored=blob()[:, ::-1]) == []


def test_each_failure_shape_is_named():
    assert codes(mask_problems(np.zeros((60, 80), np.uint8))) == ["empty"]
    assert codes(mask_problems(np.full((60, 80), 255, np.uint8))) == ["full"]
    scene = np.full((60, 80), 255, np.uint8)
    scene[20:40, 30:50] = 0  # everything but a hole: the model took the scene
    assert codes(mask_problems(scene)) == ["border"]
    speckled = np.zeros((60, 80), np.uint8)
    for i in range(6):
        speckled[5 + 9 * i : 10 + 9 * i, 5 + 12 * i : 12 + 12 * i] = 255
    assert codes(mask_problems(speckled)) == ["fragmented"]
    assert "fragmented" not in codes(mask_problems(speckled, SanityLimits(parts=6)))
    head_only = blob(height=8, width=10, left=60)  # the mirrored photo's mask found the body
    assert codes(mask_problems(blob(), mirrored=head_only)) == ["flip"]


def test_details_give_the_measured_value():
    (problem,) = mask_problems(blob(height=2, width=2))
    assert problem == "empty: 0.1% foreground"


def test_data_check_names_planted_masks_and_draws_them(tmp_path, capsys):
    splits = {"train": ["a"], "val": ["b"], "test": ["c"]}
    root = write_folder_dataset(tmp_path / "ds", {"a": 4, "b": 4, "c": 4}, splits=splits)
    planted = {
        "a/000.png": np.zeros((40, 48), np.uint8),
        "a/001.png": np.full((40, 48), 255, np.uint8),
        "b/002.png": np.pad(np.zeros((30, 38), np.uint8), 5, constant_values=255),
    }
    for relative, mask in planted.items():
        Image.fromarray(mask).save(root / "masks" / relative)

    report = check_dataset(root)
    flagged = {s["image"]: codes(s["problems"]) for s in report.suspect_masks}
    assert flagged == {"a/000.png": ["empty"], "a/001.png": ["full"], "b/002.png": ["border"]}
    listed = json.loads((root / "masks" / "masks-suspects.json").read_text())
    assert listed["checked"] == 12 and [m["image"] for m in listed["masks"]] == sorted(flagged)
    sheet = Image.open(root / "masks" / "masks-suspects.png")
    assert sheet.height >= 3 * 160 and sheet.width > 2 * 160
    row = np.asarray(sheet.convert("RGB"))[:160]
    assert row.std() > 10  # the photo and its overlay are drawn, not a blank tile

    # a mask with no object or no background at all is an error; a border-hugging one suspect
    assert main(["data", "check", str(root)]) == 1
    out = capsys.readouterr().out
    assert "3 suspect mask(s)" in out and "a/000.png: empty" in out and "b/002.png: border" in out
    assert "2 problem(s)" in out and "mask is empty" in out and "mask is full" in out


def test_suspect_shapes_alone_are_not_errors(tmp_path, capsys):
    splits = {"train": ["a"], "val": ["b"], "test": ["c"]}
    root = write_folder_dataset(tmp_path / "ds", {"a": 2, "b": 2, "c": 2}, splits=splits)
    speck = np.zeros((40, 48), np.uint8)
    speck[20, 20:25] = 255  # 5 pixels: an object the model barely found
    Image.fromarray(speck).save(root / "masks" / "a" / "000.png")
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "a/000.png: empty: 0.3% foreground" in out
    assert "no problems found, but check the suspect masks" in out


def test_fixed_masks_clear_the_sheet(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 2, "b": 2})
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "masks" / "a" / "000.png")
    assert len(check_dataset(root).suspect_masks) == 1
    Image.fromarray(blob(40, 48, 10, 12, 20, 24)).save(root / "masks" / "a" / "000.png")
    report = check_dataset(root)
    assert report.suspect_masks == [] and not (root / "masks" / "masks-suspects.png").exists()
    assert json.loads((root / "masks" / "masks-suspects.json").read_text())["suspect"] == 0
