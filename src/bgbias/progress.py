"""Progress with rate and ETA on stderr, so results on stdout stay clean.

On a terminal: tqdm bars. Elsewhere (a log file, a SLURM job, CI): a plain line every
``LOG_EVERY`` seconds with count, rate and ETA, and a last line when such a job ends, so a log
shows that a long job is alive without carriage-return noise; jobs shorter than that stay silent.
``--quiet`` turns both off.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol

from tqdm.auto import tqdm

LOG_EVERY = 30.0  # seconds between plain progress lines when stderr is not a terminal

_bars: bool | None = None  # None: when stderr is a terminal


class Progress(Protocol):
    """What long jobs call on a progress display (a subset of tqdm's interface)."""

    n: int

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


def show_bars(enabled: bool | None) -> None:
    """Force progress bars on or off (``--quiet``), or back to automatic (None)."""
    global _bars
    _bars = enabled


def bars_enabled() -> bool:
    return sys.stderr.isatty() if _bars is None else _bars


def log_lines_enabled() -> bool:
    """Plain progress lines: automatic mode (not --quiet, not forced) off a terminal."""
    return _bars is None and not sys.stderr.isatty()


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class LogLines:
    """Progress as plain lines, at most one per ``every`` seconds (default ``LOG_EVERY``):
    ``desc: 120/1000 img (12%), 3.1 img/s, ETA 4:43``; ``close()`` prints a last line if any
    was printed."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        stream=None,
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.every = LOG_EVERY if every is None else every
        self.n = 0
        self._clock = clock
        self._stream = stream
        self._start = self._last = clock()
        self._printed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.every:
            self._last = now
            self._print(now)

    def close(self) -> None:
        if self._printed:
            elapsed = self._clock() - self._start
            self._write(
                f"{self.desc}: done, {self.n} {self.unit} in {format_duration(elapsed)} "
                f"({self._rate(elapsed):.3g} {self.unit}/s)"
            )
            self._printed = False

    def _rate(self, elapsed: float) -> float:
        return self.n / elapsed if elapsed > 0 else 0.0

    def _print(self, now: float) -> None:
        elapsed = now - self._start
        rate = self._rate(elapsed)
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        line = f"{self.desc}: {count} {self.unit}"
        if self.total:
            line += f" ({100 * self.n / self.total:.0f}%)"
        line += f", {rate:.3g} {self.unit}/s"
        if self.total and rate > 0:
            line += f", ETA {format_duration(max(self.total - self.n, 0) / rate)}"
        self._write(line)
        self._printed = True

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stderr
        print(line, file=stream, flush=True)


def progress_bar(
    total: int | None, desc: str, unit: str = "it", enabled: bool = True
) -> tqdm | LogLines:
    """A display for ``total`` steps when ``enabled``: a tqdm bar on a terminal, plain lines
    every ``LOG_EVERY`` seconds elsewhere, nothing with --quiet."""
    if enabled and log_lines_enabled():
        return LogLines(total, desc, unit)
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
    state: dict[str, Progress] = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = progress_bar(total, desc, unit)
        bar.update(done - bar.n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return update, close
