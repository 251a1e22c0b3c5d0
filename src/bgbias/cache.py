"""Where bgbias keeps files it provisions (model weights): ``$BGBIAS_HOME`` or ~/.cache/bgbias."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("BGBIAS_HOME") or Path.home() / ".cache" / "bgbias")
    return root.joinpath(*parts)
