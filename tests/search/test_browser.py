"""The page in headless Chromium: upload a photo, see k results per index, flip the switch.

Skipped without Debian's ``chromium`` or playwright (see tests/browser.py).
"""

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi")

from bgbias.search.server import create_app  # noqa: E402
from tests.browser import headless_chromium  # noqa: E402
from tests.search.helpers import running_server  # noqa: E402

SCREENSHOT = Path(os.environ.get("BGBIAS_SCREENSHOT", "/tmp/bgbias-serve-page.png"))


def scores(page, slot: int) -> list[str]:
    return page.locator(f"[data-testid=results-{slot}] .card .score").all_inner_texts()


def test_upload_a_photo_see_k_results_side_by_side_and_flip_the_switch(service, catalogue):
    with headless_chromium() as browser, running_server(create_app(service)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        sync_api.expect(page.locator(".column")).to_have_count(2)
        page.fill("#k", "5")
        page.set_input_files("[data-testid=file]", str(catalogue / "images" / "c1" / "003.png"))
        for slot in (0, 1):
            sync_api.expect(page.locator(f"[data-testid=results-{slot}] .card")).to_have_count(5)
            sync_api.expect(page.locator(f"[data-testid=seen-image-{slot}]")).to_be_visible()
        first = page.locator("[data-testid=results-0] .card").first
        assert first.get_attribute("data-id") == "c1/003.png"
        plain = scores(page, 0), scores(page, 1)

        page.locator(".switch").click()
        for slot in (0, 1):
            grid = page.locator(f"[data-testid=results-{slot}][data-remove-background=true]")
            sync_api.expect(grid.locator(".card")).to_have_count(5)
        removed = scores(page, 0), scores(page, 1)
        assert removed[0] != plain[0] and removed[1] != plain[1]
        assert "background removed" in page.locator("#seen-0").inner_text()
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        page.locator("[data-testid=results-1] .card").nth(2).click()  # find similar
        sync_api.expect(page.locator("#status")).to_contain_text("catalogue item")
        sync_api.expect(page.locator("[data-testid=results-0] .card")).to_have_count(5)

        page.click("#browse")  # pick a catalogue item
        strip = page.locator("#strip img")
        sync_api.expect(strip).to_have_count(20)
        page.fill("#filter", "c3/")
        sync_api.expect(strip).to_have_count(5)
        strip.nth(4).click()
        sync_api.expect(page.locator("#status")).to_contain_text("catalogue item c3/004.png")
        first = page.locator("[data-testid=results-0] .card").first
        sync_api.expect(first).to_have_attribute("data-id", "c3/004.png")
        page.screenshot(path=str(SCREENSHOT.with_name(SCREENSHOT.stem + "-item.png")))
        assert errors == []
