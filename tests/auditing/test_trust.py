"""Audit numbers one can trust: suspect masks marked (or left out) with their overlays beside
the worst images, intervals and chance beside every hit@1, product hit@1 with labels, and no
level from too few images."""

import json
import re

import numpy as np
from PIL import Image

import bgbias
from bgbias.auditing.compute import MIN_IMAGES
from bgbias.auditing.verdict import INSUFFICIENT
from bgbias.cli import main
from tests.helpers import write_folder_dataset

OPTIONS = {"pretrained": False, "input_size": 64, "repeats": 1, "blend_steps": 2}
QUIET = {"batch_size": 8, "progress": False}


def plant_suspect_masks(root, size: int = 64) -> dict[str, str]:
    """Overwrite three masks of a ``write_folder_dataset`` folder: empty, full, and a frame on
    the image's border; returns image id -> the problem code each must get."""
    frame = np.full((size, size), 255, np.uint8)
    frame[12:-12, 12:-12] = 0  # 61% foreground, all of it on the border
    planted = {
        "a/000.png": np.zeros((size, size), np.uint8),
        "a/001.png": np.full((size, size), 255, np.uint8),
        "b/000.png": frame,
    }
    for image_id, mask in planted.items():
        Image.fromarray(mask).save(root / "masks" / image_id)
    return dict(zip(planted, ("empty", "full", "border"), strict=True))


def test_suspect_masks_are_marked_in_audit_json_and_both_reports(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 4, "b": 4}, size=(64, 64))
    planted = plant_suspect_masks(root)
    result = bgbias.audit("small_cnn", root, worst=8, **OPTIONS, **QUIET)
    found = result.to_dict()["suspect_masks"]
    assert found.keys() == planted.keys()
    for image_id, code in planted.items():
        assert [p.split(":")[0] for p in found[image_id]] == [code], found[image_id]
    assert result.suspect_masks == found
    assert result.to_dict()["suspect_masks_excluded"] is False
    assert result.images == 8  # marked, not left out
    assert any(n.startswith("3 of 8 masks look wrong") for n in result.notes)
    out = result.save(tmp_path / "out")
    assert json.loads((out / "audit.json").read_text())["suspect_masks"] == found
    markdown, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    worst = result.to_dict()["models"]["small_cnn"]["worst"]
    rows = [w for entries in worst.values() for w in entries]
    assert {w["image"] for w in rows} >= planted.keys()  # worst=8: every image is listed
    for image_id, code in planted.items():
        listed = [line for line in markdown.splitlines() if line.startswith(f"| {image_id} |")]
        assert len(listed) == len(worst) and all(f"mask suspect: {code}" in x for x in listed)
        assert f"mask suspect: {code}" in page
    clean = [line for line in markdown.splitlines() if line.startswith("| a/002.png |")]
    assert clean and not any("suspect" in x for x in clean)
    # beside every worst image of report.html: its photo and its mask overlay, inline
    overlays = re.findall(r"<img alt='mask overlay of ([^']+)' src='([^']+)'>", page)
    photos = re.findall(r"<img alt='photo of ([^']+)' src='([^']+)'>", page)
    assert [i for i, _ in overlays] == [w["image"] for w in rows] == [i for i, _ in photos]
    assert all(src.startswith("data:image/jpeg;base64,") for _, src in overlays + photos)
    assert "http" not in page.replace("http-equiv", "")


def test_cli_exclude_suspect_masks_leaves_them_out(tmp_path, capsys):
    root = write_folder_dataset(tmp_path / "ds", {"a": 4, "b": 4}, size=(64, 64))
    planted = plant_suspect_masks(root)
    out = tmp_path / "out"
    args = ["audit", "small_cnn", str(root), "--untrained", "--out", str(out), "-q"]
    code = main(args + ["--repeats", "1", "--blend-steps", "2", "--exclude-suspect-masks"])
    assert code == 0 and "note: 3 of 8 masks look wrong, left out" in capsys.readouterr().out
    saved = json.loads((out / "audit.json").read_text())
    assert saved["suspect_masks"].keys() == planted.keys() and saved["suspect_masks_excluded"]
    assert saved["data"]["images"] == 5 and saved["chance_hit_at_1"] == 1 / 5
    worst = saved["models"]["small_cnn"]["worst"]
    assert not {w["image"] for entries in worst.values() for w in entries} & planted.keys()
    # class a keeps 2 images, b keeps 3: label metrics still apply
    assert saved["label_metrics"] and "mixed_same" in saved["models"]["small_cnn"]["conditions"]


def test_three_images_give_not_enough_images_rather_than_a_level(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3}, size=(64, 64))
    result = bgbias.audit("small_cnn", root, **OPTIONS, **QUIET)
    found = result.verdicts["small_cnn"]
    assert found.level == INSUFFICIENT and found.sentence.startswith("Not enough images")
    assert any(f"only 3 images (fewer than {MIN_IMAGES})" in n for n in result.notes)
    out = result.save(tmp_path / "out")
    assert "Not enough images" in (out / "report.md").read_text()
    assert INSUFFICIENT in result._repr_html_()


def test_labelled_audit_reports_intervals_chance_and_product_hit_at_1(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 4, "b": 4, "c": 4}, size=(64, 64))
    result = bgbias.audit("small_cnn", root, **OPTIONS, **QUIET)
    saved = result.to_dict()["models"]["small_cnn"]["conditions"]
    for name in ("only_fg", "mixed_rand", "mixed_same", "only_bg"):
        instance = saved[name]["instance"]
        metric = result.models["small_cnn"].conditions[name]
        for rate in ("hit_at_1", "product_hit_at_1"):
            lo, hi = instance[f"{rate}_ci"]
            assert 0.0 <= lo <= instance[rate] <= hi <= 1.0, (name, rate)
        # the own original is one of the product's views: a product hit whenever a hit
        assert instance["product_hit_at_1"] >= instance["hit_at_1"]
        assert instance["product_chance"] == 4 / 12
        assert metric.hit_at_1_ci == tuple(instance["hit_at_1_ci"])
        assert metric.product_hit_at_1 == instance["product_hit_at_1"]
        assert metric.product_chance == 4 / 12 and metric.chance == 1 / 12
    out = result.save(tmp_path / "out")
    report = (out / "report.md").read_text()
    lo, hi = saved["mixed_rand"]["instance"]["hit_at_1_ci"]
    assert f"| mixed_rand | hit@1 | {1 / 12:.3f} | " in report and f"[{lo:.3f}, {hi:.3f}]" in report
    assert f"| mixed_rand | product hit@1 | {4 / 12:.3f} | " in report
    page = result._repr_html_()
    assert f"[{lo:.3f}, {hi:.3f}]" in page and "product" in page and "chance 0.333" in page
