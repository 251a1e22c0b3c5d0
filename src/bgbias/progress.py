"""Progress bars with rate and ETA (tqdm), written to stderr so results on stdout stay clean."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm.auto import tqdm


def progress_bar(
    total: int | None, desc: str, unit: str = "it", disable: bool | None = None
) -> tqdm:
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        mininterval=0.5,
        file=sys.stderr,
        disable=disable,
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
