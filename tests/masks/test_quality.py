import numpy as np
import pytest
from PIL import Image

from bgbias.cli import main
from bgbias.errors import DataError
from bgbias.masks.quality import mask_quality


def _mask(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_iou_and_overlap_after_binarising_at_128(tmp_path):
    gt = np.zeros((10, 10))
    gt[:, :5] = 255  # 50 object pixels
    pred = np.zeros((10, 10))
    pred[:, 2:8] = 200  # 60 pixels, 30 shared
    pred[0, 9] = 127  # below the threshold: background
    _mask(tmp_path / "pred" / "x_image.png", pred)
    _mask(tmp_path / "gt" / "x_mask.png", gt)
    _mask(tmp_path / "pred" / "y_image.png", gt)
    _mask(tmp_path / "gt" / "y_mask.png", gt)
    result = mask_quality(tmp_path / "pred", tmp_path / "gt", "_image", "_mask")
    rows = {r["image"]: r for r in result["per_image"]}
    assert rows["x"]["iou"] == pytest.approx(30 / 80) and rows["x"]["overlap"] == pytest.approx(
        30 / 50
    )
    assert rows["y"]["iou"] == 1.0 and rows["y"]["overlap"] == 1.0
    assert result["iou"]["mean"] == pytest.approx((30 / 80 + 1) / 2)
    assert result["iou"]["min"] == pytest.approx(30 / 80) and result["iou"]["max"] == 1.0
    assert result["iou"]["median"] == pytest.approx((30 / 80 + 1) / 2)
    assert set(result["iou"]) == {"mean", "std", "min", "q1", "median", "q3", "max"}


def test_unpaired_and_mismatched_masks(tmp_path):
    _mask(tmp_path / "pred" / "a.png", np.zeros((4, 4)))
    _mask(tmp_path / "gt" / "b.png", np.zeros((4, 4)))
    with pytest.raises(DataError, match="has a counterpart"):
        mask_quality(tmp_path / "pred", tmp_path / "gt")
    _mask(tmp_path / "gt" / "a.png", np.zeros((5, 5)))
    with pytest.raises(DataError, match="mask is 4x4 but its image is 5x5"):
        mask_quality(tmp_path / "pred", tmp_path / "gt")


def test_check_masks_command(tmp_path, capsys):
    _mask(tmp_path / "pred" / "a.png", np.full((4, 4), 255))
    _mask(tmp_path / "gt" / "a.png", np.full((4, 4), 255))
    assert (
        main(
            [
                "check-masks",
                str(tmp_path / "pred"),
                str(tmp_path / "gt"),
                "--out",
                str(tmp_path / "q.json"),
            ]
        )
        == 0
    )
    assert "| iou | 1.000 |" in capsys.readouterr().out and (tmp_path / "q.json").is_file()
