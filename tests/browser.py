"""Headless Chromium for page tests: playwright driving Debian's ``chromium``.

Needs ``apt-get install chromium`` and ``pip install playwright`` (playwright's own browser
download is not needed: the system Chromium is driven). :func:`headless_chromium` skips the
calling test when either is absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = (
    os.environ.get("BGBIAS_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]


@contextlib.contextmanager
def headless_chromium() -> Iterator:
    """A playwright ``Browser`` (closed on exit); skips the test without playwright or chromium."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("no chromium executable (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
