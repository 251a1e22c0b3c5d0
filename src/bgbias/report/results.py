"""Evaluation result files (``*.eval.json`` of ``bgbias evaluate``): found under folders and
read, with a one-line error for one that is not a result. A leaf of the report package."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import BgbiasError
from .format import METRIC_TITLES


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
    problem = _result_problem(result)
    if problem:
        raise BgbiasError(f"{path}: not a valid evaluation result ({problem})")
    return result


def _result_problem(result: dict[str, Any]) -> str | None:
    """What in a result's shape the tables cannot use (a hand-edited or foreign file)."""

    def number(value: Any) -> bool:  # null: a metric with no value (see bgbias.io.write_json)
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))

    for key in ("model", "clean"):
        if not isinstance(result[key], dict):
            return f"{key!r} must be an object, got {json.dumps(result[key])[:40]}"
    if not isinstance(result.get("dataset", {}), dict):
        return "'dataset' must be an object"
    corrupted = result.get("corrupted")
    if corrupted is not None and not isinstance(corrupted, dict):
        return f"'corrupted' must be an object or null, got {json.dumps(corrupted)[:40]}"
    for metric in METRIC_TITLES:
        if not number(result["clean"].get(metric)):
            return f"clean {metric} must be a number, got {json.dumps(result['clean'][metric])}"
        summary = (corrupted or {}).get(metric)
        if summary is None:
            continue
        if not isinstance(summary, dict):
            return f"corrupted {metric} must be an object with mean and std"
        for part in ("mean", "std"):
            if not number(summary.get(part)):
                return (
                    f"corrupted {metric} {part} must be a number, got {json.dumps(summary[part])}"
                )
    return None
