"""Reports: the paper's tables (Markdown, LaTeX, CSV) and figures from result files, and the
comparison with the paper's published numbers.

Layers, one way: the leaves :mod:`.format` (shared marks, escaping) and :mod:`.results`
(result files) under :mod:`.tables`, :mod:`.published` and :mod:`.figures` (plain numbers in, PNG
out), which do not import one another, and :mod:`.write` over all three."""

from ..tabular import MISSING
from .figures import attribution_figure
from .format import METRIC_TITLES
from .results import find_results, load_result
from .tables import (
    FORMATS,
    SUFFIXES,
    Cell,
    Table,
    attention_table,
    build_table,
    to_csv,
    to_latex,
    to_markdown,
)
from .write import compare_results, table_figure, write_report

__all__ = [
    "FORMATS",
    "METRIC_TITLES",
    "MISSING",
    "SUFFIXES",
    "Cell",
    "Table",
    "attention_table",
    "attribution_figure",
    "build_table",
    "compare_results",
    "find_results",
    "load_result",
    "table_figure",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_report",
]
