"""The one table renderer: Markdown and LaTeX tables, and a number as "mean ± std".

Every report bgbias writes (result tables, the comparison with the paper, the audit report,
attention summaries, ``reproduce``'s status, mask quality) renders through these, so a table
looks the same wherever it appears. A leaf: it imports nothing of bgbias.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MISSING = "–"  # a number a table has no value for
PLUS_MINUS = {"md": "±", "latex": r"$\pm$"}


def mean_std(
    mean: float | None,
    std: float | None = None,
    digits: int = 2,
    pm: str = PLUS_MINUS["md"],
    scale: float = 1.0,
    interval: Sequence[float] | None = None,
) -> str:
    """``mean`` (times ``scale``) to ``digits`` places, then its ``[lo, hi]`` interval and
    ``± std`` when given; :data:`MISSING` without a mean."""
    if mean is None:
        return MISSING
    text = f"{scale * mean:.{digits}f}"
    if interval is not None:
        text += f" [{scale * interval[0]:.{digits}f}, {scale * interval[1]:.{digits}f}]"
    return text if std is None else f"{text} {pm} {scale * std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown (GitHub) table: header, rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def latex_table(
    columns: str, header: Iterable[Sequence[str]], rows: Iterable[Sequence[str]]
) -> list[str]:
    """The lines of a booktabs ``tabular`` with column spec ``columns`` (``"lrr"``), one or
    more header rows and the body rows; a :data:`MISSING` cell is LaTeX's ``--``."""

    def line(cells: Sequence[str]) -> str:
        return " & ".join(c.replace(MISSING, "--") for c in cells) + r" \\"

    return [
        r"\begin{tabular}{" + columns + "}",
        r"\toprule",
        *(line(h) for h in header),
        r"\midrule",
        *(line(r) for r in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]


def tex_escape(text: str) -> str:
    """``text`` as LaTeX prints it literally (model and dataset names hold ``_`` and ``&``)."""
    return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")
