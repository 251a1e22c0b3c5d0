"""Shared bits of the benchmark scripts (timing, background photos)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

# ../shared/data beside the checkout, or beside the worktrees' folder
SHARED_DATA = next(
    (p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)
SHARED_BACKGROUNDS = SHARED_DATA / "unsplash_backgrounds"


def time_ms(
    fn: Callable[[], object], repeats: int, warmup: int = 2, sync: Callable[[], None] = lambda: None
) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def pick_device(name: str):
    """``--device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (bgbias's own resolution; a
    device this machine lacks exits with bgbias's one-line error)."""
    from bgbias.devices import resolve_device
    from bgbias.errors import ConfigError

    try:
        return resolve_device(name)
    except ConfigError as exc:
        raise SystemExit(f"--device: {exc}") from None


def device_sync(device) -> Callable[[], None]:
    """What to call before reading the clock: waits for queued GPU work."""
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def background_folder() -> tuple[Path, str]:
    """The paper's 100 validation photos when ../shared has them, else 100 synthetic
    1000x1333 JPEGs (the photos' size) written to a temporary folder."""
    if (SHARED_BACKGROUNDS / "val").is_dir():
        return SHARED_BACKGROUNDS, "paper's Unsplash photos (../shared)"
    root = Path(tempfile.mkdtemp(prefix="bgbias-bench-"))
    rng = np.random.default_rng(0)
    for split in ("val", "test"):
        (root / split).mkdir()
        for i in range(100):
            small = rng.integers(0, 255, size=(40, 30, 3), dtype=np.uint8)
            photo = Image.fromarray(small).resize((1000, 1333), Image.BICUBIC)
            photo.save(root / split / f"{i:03d}.jpg", quality=90)
    return root, "synthetic 1000x1333 JPEGs"
