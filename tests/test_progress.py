"""Progress off a terminal: plain lines a log can hold, every LOG_EVERY seconds, silent for
short jobs; tqdm bars on a terminal; nothing with --quiet."""

from __future__ import annotations

import io

import pytest

from bgbias import progress
from bgbias.progress import LogLines, progress_bar


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_print_count_rate_and_eta_every_interval():
    clock, stream = Clock(), io.StringIO()
    lines = LogLines(1000, "masks (u2net)", unit="img", every=30, clock=clock, stream=stream)
    for _ in range(100):  # 100 images in 29 s: no line yet
        clock.now += 0.29
        lines.update(1)
    assert stream.getvalue() == ""
    clock.now = 40.0
    lines.update(20)  # 120 images after 40 s: 3 img/s, 880 left -> ETA 4:53
    assert stream.getvalue() == "masks (u2net): 120/1000 img (12%), 3 img/s, ETA 4:53\n"
    clock.now = 50.0
    lines.update(10)  # within 30 s of the last line: quiet
    assert stream.getvalue().count("\n") == 1
    clock.now = 100.0
    lines.update(870)
    lines.close()
    last = stream.getvalue().splitlines()[-1]
    assert last == "masks (u2net): done, 1000 img in 1:40 (10 img/s)"
    assert "\r" not in stream.getvalue()


def test_short_job_stays_silent_and_unknown_total_has_no_eta():
    clock, stream = Clock(), io.StringIO()
    short = LogLines(10, "index", every=30, clock=clock, stream=stream)
    clock.now = 5.0
    short.update(10)
    short.close()
    assert stream.getvalue() == ""
    endless = LogLines(None, "fetch", unit="B", every=30, clock=clock, stream=stream)
    clock.now = 40.0
    endless.update(70)
    assert stream.getvalue() == "fetch: 70 B, 2 B/s\n"


@pytest.mark.parametrize(
    ("forced", "tty", "kind"),
    [(None, False, "lines"), (None, True, "bar"), (False, False, "off"), (True, False, "bar")],
)
def test_progress_bar_kind_follows_terminal_and_quiet(monkeypatch, forced, tty, kind):
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: tty, raising=False)
    progress.show_bars(forced)
    try:
        display = progress_bar(10, "x")
        if kind == "lines":
            assert isinstance(display, LogLines)
        else:
            assert not isinstance(display, LogLines)
            assert display.disable is (kind == "off")
        display.close()
        assert not isinstance(progress_bar(10, "x", enabled=False), LogLines)
    finally:
        progress.show_bars(None)


def test_training_off_a_terminal_logs_steps_with_eta(tmp_path, monkeypatch, capsys):
    from bgbias.config import compose
    from bgbias.data.generate import generate_benchmark
    from bgbias.training import fit
    from tests.helpers import TINY, small

    generate_benchmark(tmp_path / "g", TINY)
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    overrides = [o for o in small(tmp_path / "g", tmp_path / "run") if "progress_bar" not in o]
    fit(compose("generated/normalized_softmax/base", [*overrides, "trainer.max_epochs=2"]))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("training")]
    assert lines[0].startswith("training: 1/4 step (25%)") and "ETA" in lines[0]
    assert lines[-1].startswith("training: done, 4 step in")
