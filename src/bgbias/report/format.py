"""What every report table shares: the mark of a missing number, the metrics' titles, and
LaTeX escaping. A leaf: the tables, the comparison and the figures all read it."""

from __future__ import annotations

MISSING = "–"
METRIC_TITLES = {"map_at_r": "MAP@R", "precision_at_1": "P@1", "r_precision": "R-Precision"}


def tex_escape(text: str) -> str:
    """``text`` as LaTeX prints it literally (model and dataset names hold ``_`` and ``&``)."""
    return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")
