"""Progress bars with rate and ETA (tqdm) on stderr, so results on stdout stay clean; shown
only when stderr is a terminal (log files get no carriage-return lines), unless told."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm.auto import tqdm

_bars: bool | None = None  # None: when stderr is a terminal


def show_bars(enabled: bool | None) -> None:
    """Force progress bars on or off (``--quiet``), or back to automatic (None)."""
    global _bars
    _bars = enabled


def bars_enabled() -> bool:
    return sys.stderr.isatty() if _bars is None else _bars


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True) -> tqdm:
    """A bar for ``total`` steps; drawn when ``enabled`` and bars are on (see bars_enabled)."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        mininterval=0.5,
        file=sys.stderr,
        disable=not (enabled and bars_enabled()),
    )


def progress_callback(
    desc: str, unit: str = "it"
) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A ``(done, total)`` callback driving a bar, and a function that closes it."""
    state: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = progress_bar(total, desc, unit)
        bar.update(done - bar.n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return update, close
