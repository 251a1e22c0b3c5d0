"""Shared fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_folder_dataset


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """6 classes x 4 images, split 2/2/2, with masks."""
    classes = {f"c{i}": 4 for i in range(6)}
    splits = {"train": ["c0", "c1"], "val": ["c2", "c3"], "test": ["c4", "c5"]}
    return write_folder_dataset(tmp_path / "ds", classes, splits=splits)
