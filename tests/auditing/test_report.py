"""The audit's ``report.html`` in headless Chromium: every figure decodes, nothing is fetched."""

import pytest

from bgbias.adapters import AdapterOptions
from bgbias.auditing import AuditConfig, run_audit
from tests.browser import headless_chromium
from tests.helpers import write_folder_dataset

IMAGES = (
    "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.src.split(',')[0]])"
)


@pytest.mark.slow
def test_report_html_opens_offline_with_every_figure_loaded(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    config = AuditConfig(
        models=["small_cnn"],
        images=root,
        out=tmp_path / "out",
        repeats=1,
        blend_steps=2,
        options=AdapterOptions(pretrained=False, input_size=64),
        progress=False,
    )
    run_audit(config)
    report = (tmp_path / "out" / "report.html").resolve()
    with headless_chromium() as browser:
        page = browser.new_page()
        fetched: list[str] = []  # any request beyond the page itself and its data: URIs

        def guard(route):
            url = route.request.url
            if url == report.as_uri() or url.startswith("data:"):
                route.continue_()
            else:
                fetched.append(url)
                route.abort()

        page.route("**/*", guard)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(report.as_uri(), wait_until="load")
        images = page.evaluate(IMAGES)
    assert fetched == [] and errors == []
    # bars per condition, the blend curve, the model's retrieval grid; then beside each worst
    # image (6 images, 4 conditions, worst 8: every image 4 times) its photo and mask overlay
    figures = [i for i in images if not i[0].startswith(("photo of", "mask overlay of"))]
    assert [i[0] for i in figures] == ["conditions", "blend", "retrieval_grid_1"], images
    assert sum(i[0].startswith("mask overlay of") for i in images) == 6 * 4
    assert len(images) == 3 + 2 * 6 * 4
    for alt, complete, width, source in images:
        kind = "png" if alt in ("conditions", "blend", "retrieval_grid_1") else "jpeg"
        assert complete and width > 0 and source == f"data:image/{kind};base64", (alt, source)
