"""What every report table of results shares: the metrics' titles (the rendering, missing
numbers and LaTeX escaping are :mod:`bgbias.tabular`'s). A leaf: the tables, the comparison
and the figures all read it."""

from __future__ import annotations

METRIC_TITLES = {"map_at_r": "MAP@R", "precision_at_1": "P@1", "r_precision": "R-Precision"}
