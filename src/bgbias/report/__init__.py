"""Reports: the paper's tables (Markdown, LaTeX, CSV) and figures from result files, and the
comparison with the paper's published numbers."""

from .figures import attribution_figure, bar_chart
from .tables import (
    FORMATS,
    METRIC_TITLES,
    MISSING,
    SUFFIXES,
    Cell,
    Table,
    attention_table,
    build_table,
    find_results,
    load_result,
    to_csv,
    to_latex,
    to_markdown,
    write_report,
)

__all__ = [
    "FORMATS",
    "METRIC_TITLES",
    "MISSING",
    "SUFFIXES",
    "Cell",
    "Table",
    "attention_table",
    "attribution_figure",
    "bar_chart",
    "build_table",
    "find_results",
    "load_result",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_report",
]
