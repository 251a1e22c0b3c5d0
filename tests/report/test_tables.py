import json

import pytest

from bgbias.cli import main
from bgbias.errors import BgbiasError
from bgbias.report import MISSING, build_table, to_csv, to_latex, to_markdown
from tests.helpers import bar_heights


def result(dataset, loss, mode, clean, corrupted):
    return {
        "model": {"loss": loss, "mode": mode},
        "dataset": {"name": dataset},
        "clean": {"map_at_r": clean, "precision_at_1": 0.9, "r_precision": 0.5},
        "corrupted": {"map_at_r": {"mean": corrupted, "std": 0.001, "values": [corrupted] * 5}},
    }


RESULTS = [
    result("cub200", "arcface", "base", 0.2066, 0.1287),
    result("cub200", "arcface", "bgaugment", 0.2091, 0.1792),
    result("cars196", "arcface", "base", 0.1625, 0.1363),
    result("cub200", "triplet", "base", 0.1829, 0.1094),
]


def test_paper_layout_with_missing_cells():
    table = build_table(RESULTS)
    assert table.rows == ["ArcFace", "ArcFace + BGAugment", "Triplet"]
    assert table.datasets == ["cub200", "cars196"]
    md = to_markdown(table)
    assert "| model | cub200 clean | cub200 corrupted | cars196 clean | cars196 corrupted |" in md
    assert "| ArcFace | 20.66 | 12.87 ± 0.10 | 16.25 | 13.63 ± 0.10 |" in md
    assert f"| ArcFace + BGAugment | 20.91 | 17.92 ± 0.10 | {MISSING} | {MISSING} |" in md
    latex = to_latex(table)
    assert r"ArcFace + BGAugment & 20.91 & 17.92 $\pm$ 0.10 & -- & -- \\" in latex
    assert latex.startswith(r"\begin{tabular}{lrrrr}")
    rows = to_csv(table).splitlines()
    assert rows[0] == "model,dataset,metric,clean,corrupted_mean,corrupted_std"
    assert "ArcFace + BGAugment,cars196,map_at_r,,," in rows


def test_report_command_writes_tables_and_chart(tmp_path, capsys, drawn_figures):
    for i, r in enumerate(RESULTS):
        (tmp_path / f"r{i}.test.eval.json").write_text(json.dumps(r))
    out = tmp_path / "table"
    assert main(["report", str(tmp_path), "--out", str(out)]) == 0
    for suffix in (".md", ".tex", ".csv", ".png"):
        assert (tmp_path / f"table{suffix}").stat().st_size > 0
    assert (tmp_path / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ArcFace + BGAugment" in capsys.readouterr().out
    # the chart shows the table: a panel per dataset, per model a clean and a replaced bar
    chart = drawn_figures["table.png"]
    cub, cars = chart.axes
    assert (cub.get_title(), cars.get_title()) == ("cub200", "cars196")
    models = [label.get_text().replace("\n", " ") for label in cub.get_xticklabels()]
    assert models == ["ArcFace", "ArcFace + BGAugment", "Triplet"]
    assert bar_heights(cub) == [
        pytest.approx([20.66, 20.91, 18.29]),  # clean
        pytest.approx([12.87, 17.92, 10.94]),  # replaced backgrounds
    ]
    nan = float("nan")  # no cars196 run of the last two models: an empty slot, not a zero bar
    assert bar_heights(cars) == [
        pytest.approx([16.25, nan, nan], nan_ok=True),
        pytest.approx([13.63, nan, nan], nan_ok=True),
    ]
    assert cub.get_ylabel() == "MAP@R x 100"
    (legend,) = chart.legends
    assert [t.get_text() for t in legend.get_texts()] == ["clean", "replaced backgrounds"]


def test_report_errors(tmp_path):
    from bgbias.report import find_results, load_result

    with pytest.raises(BgbiasError, match="no evaluation results"):
        find_results([tmp_path])
    bad = tmp_path / "bad.eval.json"
    bad.write_text("{not json")
    with pytest.raises(BgbiasError, match="not a readable evaluation result"):
        load_result(bad)
