"""bgbias's numbers beside the paper's published ones."""

import json

import pytest

from bgbias.cli import main
from bgbias.errors import BgbiasError
from bgbias.report.published import collect, compare, published
from bgbias.report.write import compare_results
from tests.helpers import texts_of


def _eval(folder, dataset, loss, mode, clean, corrupted, std=0.001, split="test"):
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "model": {"loss": loss, "mode": mode, "preset": f"{dataset}/{loss}/{mode}"},
        "dataset": {"name": dataset, "split": split},
        "clean": {"map_at_r": clean, "precision_at_1": 0.5, "r_precision": 0.3},
        "corrupted": {"map_at_r": {"mean": corrupted, "std": std, "values": [corrupted] * 5}},
    }
    (folder / f"best.{split}.eval.json").write_text(json.dumps(result))


def _attention(folder, dataset, loss, mode, mean):
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"label": "x", "loss": loss, "mode": mode, "dataset": dataset, "split": "test"}
    summary = {"run-abc": entry | {"mean": mean, "std": 0.2, "images": 10, "undefined": 0}}
    (folder / "summary.json").write_text(json.dumps(summary))


def test_published_numbers_are_the_papers_two_tables():
    citation, numbers = published("paper")
    assert "On Background Bias in Deep Metric Learning" in citation
    assert len(numbers) == 30  # 3 datasets x 5 losses x {base, BGAugment}
    cub = numbers[("cub200", "arcface", "base")]
    assert (cub.value["clean"], cub.value["corrupted"], cub.std["corrupted"]) == (
        20.66,
        12.87,
        0.16,
    )
    assert cub.value["attention"] == 0.25
    sop = numbers[("sop", "triplet", "bgaugment")]
    assert (sop.value["clean"], sop.value["corrupted"], sop.value["attention"]) == (
        29.63,
        21.39,
        0.26,
    )


def test_comparison_rows_and_differences(tmp_path, drawn_figures):
    _eval(tmp_path / "cub200/arcface/base/run", "cub200", "arcface", "base", 0.2000, 0.1300, 0.002)
    _attention(tmp_path / "cub200/arcface/base/attention", "cub200", "arcface", "base", 0.31)
    _eval(tmp_path / "generated/triplet/base/run", "generated", "triplet", "base", 0.5, 0.25)
    _eval(tmp_path / "val", "cub200", "triplet", "base", 0.9, 0.9, split="val")  # not the test
    comparison = compare([tmp_path])
    key = ("cub200", "arcface", "base")
    assert comparison.difference(key, "clean") == pytest.approx(20.00 - 20.66)
    assert comparison.difference(key, "corrupted") == pytest.approx(13.00 - 12.87)
    assert comparison.difference(key, "attention") == pytest.approx(0.31 - 0.25)
    assert comparison.rows[("cub200", "triplet", "base")][0].value["clean"] is None
    assert len(comparison.rows) == 31  # the paper's 30 and the generated run
    assert list(comparison.rows)[-1] == ("generated", "triplet", "base")
    _, written = compare_results([tmp_path])
    md, tex, csv_path, png = written
    assert md == tmp_path / "compare-paper.md"
    text = md.read_text()
    assert (
        "| ArcFace | cub200 | 20.00 | 20.66 | -0.66 | 13.00 ± 0.20 | 12.87 ± 0.16 | +0.13 |" in text
    )
    assert "| ArcFace | cub200 | 0.310 ± 0.200 | 0.250 | +0.060 |" in text
    assert "| Triplet | generated | 50.00 | – | – | 25.00 ± 0.10 | – | – |" in text
    assert "| Triplet + BGAugment | sop | – | 29.63 | – | – | 21.39 ± 0.07 | – |" in text
    assert r"ArcFace & cub200 & 20.00 & 20.66 & -0.66 & 13.00 $\pm$ 0.20" in tex.read_text()
    rows = csv_path.read_text().splitlines()
    assert (
        rows[0] == "model,dataset,loss,mode,quantity,bgbias,bgbias_std,paper,paper_std,difference"
    )
    assert "ArcFace,cub200,arcface,base,clean,20,,20.66,,-0.66" in rows
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the agreement chart: one point (paper, bgbias) per model that has both numbers, so only
    # the cub200 ArcFace run (the generated run has no published number)
    chart = drawn_figures[png.name]
    points = {
        ax.get_title(): [tuple(xy) for c in ax.collections for xy in c.get_offsets()]
        for ax in chart.axes
    }
    assert points == {
        "MAP@R x 100, clean": [pytest.approx((20.66, 20.00))],
        "MAP@R x 100, replaced backgrounds": [pytest.approx((12.87, 13.00))],
        "attention score": [pytest.approx((0.25, 0.31))],
    }
    assert [ax.get_xlabel() for ax in chart.axes] == ["paper"] * 3
    assert "cub200" in texts_of(chart) and "generated" not in texts_of(chart)  # the legend


def test_report_compare_command(tmp_path, capsys):
    _eval(tmp_path / "runs" / "a", "cars196", "contrastive", "bgaugment", 0.17, 0.16)
    out = tmp_path / "table"
    assert main(["report", str(tmp_path / "runs"), "--compare", "paper", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Contrastive + BGAugment | cars196 | 17.00 | 16.43 | +0.57 |" in printed
    assert all((tmp_path / f"table{s}").is_file() for s in (".md", ".tex", ".csv", ".png"))


def test_no_results_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BgbiasError, match="no results of bgbias runs .*bgbias reproduce"):
        collect([tmp_path / "empty"])
    with pytest.raises(BgbiasError, match="no such file or folder"):
        collect([tmp_path / "missing"])
