"""Evaluation result files (``*.eval.json`` of ``bgbias evaluate``): found under folders and
read, with a one-line error for one that is not a result. A leaf of the report package."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import BgbiasError


def find_results(paths: list[str | os.PathLike]) -> list[Path]:
    """Evaluation JSON files among ``paths`` (folders are searched for ``*.eval.json``)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(path.rglob("*.eval.json")))
        elif path.is_file():
            found.append(path)
        else:
            raise BgbiasError(f"{path}: no such file or folder")
    if not found:
        raise BgbiasError(
            f"no evaluation results (*.eval.json) in {', '.join(map(str, paths))}; "
            "make them with `bgbias evaluate`"
        )
    return found


def load_result(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BgbiasError(f"{path}: not a readable evaluation result ({exc})") from None
    if not isinstance(result, dict) or "clean" not in result or "model" not in result:
        raise BgbiasError(f"{path}: not a bgbias evaluation result (no 'clean'/'model' keys)")
    return result
