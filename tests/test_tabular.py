"""The one table renderer: mean ± std, Markdown and LaTeX tables, used by every report."""

from pathlib import Path

from bgbias.tabular import MISSING, latex_table, markdown_table, mean_std

SRC = Path(__file__).resolve().parents[1] / "src" / "bgbias"


def test_mean_std_scales_rounds_and_marks_a_missing_number():
    assert mean_std(0.12873, 0.001, scale=100) == "12.87 ± 0.10"
    assert mean_std(0.5) == "0.50"  # no std: the mean alone
    assert mean_std(None, 0.1) == MISSING
    assert mean_std(0.9167, 0.1179, 3, interval=(0.75, 1.0)) == "0.917 [0.750, 1.000] ± 0.118"
    assert mean_std(0.31, 0.2, 3, pm=r"$\pm$") == r"0.310 $\pm$ 0.200"


def test_markdown_and_latex_tables():
    rows = [["a", "1.00"], ["b", MISSING]]
    assert markdown_table(["model", "x"], rows) == [
        "| model | x |",
        "|---|---|",
        "| a | 1.00 |",
        f"| b | {MISSING} |",
    ]
    assert latex_table("lr", [["Model", "x"]], rows) == [
        r"\begin{tabular}{lr}",
        r"\toprule",
        r"Model & x \\",
        r"\midrule",
        r"a & 1.00 \\",
        r"b & -- \\",  # LaTeX's dash for a missing number
        r"\bottomrule",
        r"\end{tabular}",
    ]


def test_no_module_renders_a_table_of_its_own():
    marks = ('"---|"', '"|---|', r"\begin{tabular}")
    own = [
        f"{path.relative_to(SRC)}: {mark}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "tabular.py"
        for mark in marks
        if mark in path.read_text()
    ]
    assert own == []
