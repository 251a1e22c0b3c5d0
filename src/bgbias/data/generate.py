"""The generated benchmark: procedurally drawn object classes, each shot mostly at its home scene.

The home scene is the shortcut real retrieval datasets have (same car, same showroom): a model can
match images by background alone, and loses that when backgrounds are replaced. Classes of every
split have home scenes, so the shortcut also works on the (unseen) test classes.

Output uses the generic folder layout read by :class:`bgbias.data.datasets.FolderDataset`::

    OUT/images/<class>/<id>.png   OUT/masks/<class>/<id>.png   OUT/splits.json   OUT/benchmark.json
"""

from __future__ import annotations

import colorsys
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from PIL import Image, ImageDraw

from ..errors import ConfigError, DataError, OutputError
from ..io import ensure_writable_dir, move_aside, remove_tree, write_json
from ..outputs import check_output, contents, mark_output
from .benchmark_config import BenchmarkConfig
from .procedural import texture

FORMAT_VERSION = 2  # bumped whenever the generator draws different pixels
SUPERSAMPLE = 4  # shapes are drawn this much larger, then box-filtered: soft, exact mask edges
PNG_OPTIONS = {"compress_level": 1}  # fast zlib level: quicker writes, slightly larger files
DEFAULT_BENCHMARK = BenchmarkConfig()


# --- object classes -------------------------------------------------------------------------


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(n: int, inner: float) -> np.ndarray:
    t = np.pi / 2 + np.pi * np.arange(2 * n) / n
    r = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _cross(width: float) -> np.ndarray:
    w = width
    return np.array(
        [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ],
        dtype=float,
    )


def _arrow() -> np.ndarray:
    return np.array(
        [(-1, -0.35), (0.15, -0.35), (0.15, -0.8), (1, 0), (0.15, 0.8), (0.15, 0.35), (-1, 0.35)],
        dtype=float,
    )


# Each shape: unit outline (vertices in [-1, 1]^2) and optional hole / cut drawn as background.
SHAPES: dict[
    str, tuple[np.ndarray | None, Callable[[ImageDraw.ImageDraw, Callable], None] | None]
] = {
    "triangle": (_regular(3, np.pi / 2), None),
    "square": (_regular(4, np.pi / 4) * 0.85, None),
    "pentagon": (_regular(5, np.pi / 2), None),
    "hexagon": (_regular(6), None),
    "octagon": (_regular(8, np.pi / 8), None),
    "star4": (_star(4, 0.4), None),
    "star5": (_star(5, 0.45), None),
    "star6": (_star(6, 0.55), None),
    "cross": (_cross(0.33), None),
    "arrow": (_arrow(), None),
    "circle": (_regular(64), None),
    "ellipse": (_regular(64) * np.array([1.0, 0.55]), None),
    "ring": (_regular(64), lambda draw, tf: draw.polygon(tf(_regular(64) * 0.5), fill=0)),
    "crescent": (
        _regular(64),
        lambda draw, tf: draw.polygon(tf(_regular(64) * 0.85 + np.array([0.45, 0.0])), fill=0),
    ),
}
PATTERNS = ("solid", "stripes", "dots", "checker", "halves", "rings")
HUES = 12


@dataclass(frozen=True)
class ObjectClass:
    shape: str
    pattern: str
    hue: float
    secondary: tuple[float, float, float]
    home_seed: int

    @property
    def name(self) -> str:
        return f"{self.shape}-{self.pattern}-h{int(round(self.hue * HUES)) % HUES:02d}"


def _draw_classes(config: BenchmarkConfig, rng: np.random.Generator) -> list[ObjectClass]:
    total = config.train_classes + config.val_classes + config.test_classes
    combos = [(s, p, h) for s in SHAPES for p in PATTERNS for h in range(HUES)]
    if total > len(combos):
        raise ConfigError(f"at most {len(combos)} distinct classes can be generated, asked {total}")
    picks = rng.choice(len(combos), size=total, replace=False)
    classes = []
    for pick in picks:
        shape, pattern, hue_bin = combos[pick]
        hue = hue_bin / HUES
        light = rng.uniform() < 0.5
        secondary = colorsys.hsv_to_rgb(
            (hue + rng.uniform(0.3, 0.7)) % 1.0, rng.uniform(0.2, 0.9), 0.95 if light else 0.2
        )
        classes.append(ObjectClass(shape, pattern, hue, secondary, int(rng.integers(2**31))))
    return classes


def _smooth_step(signed: np.ndarray, pixels_per_unit: float) -> np.ndarray:
    """0/1 step at ``signed == 0`` with a one-pixel linear ramp (anti-aliased edges)."""
    return np.clip(0.5 + signed * pixels_per_unit, 0.0, 1.0)


def _pattern_field(pattern: str, size: int, angle: float) -> np.ndarray:
    """Where the secondary colour shows, in [0, 1], shape (size, size), image-centred coords."""
    c = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    y, x = np.meshgrid(c, c, indexing="ij")
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    px = size / 2  # pixels per coordinate unit
    if pattern == "solid":
        return np.zeros_like(x)
    if pattern == "stripes":
        period = 1 / 2.2
        return _smooth_step(period / 4 - np.abs(u % period - period / 2), px)
    if pattern == "dots":
        period = 1 / 2.5
        return _smooth_step(
            0.28 * period - np.hypot(u % period - period / 2, v % period - period / 2), px
        )
    if pattern == "checker":
        period = 1 / 2.5
        du = period / 4 - np.abs(u % period - period / 2)
        dv = period / 4 - np.abs(v % period - period / 2)
        return _smooth_step(-du * dv * 8, px)
    if pattern == "halves":
        return _smooth_step(u, px)
    if pattern == "rings":
        period = 1 / 2.0
        return _smooth_step(period / 4 - np.abs(np.hypot(u, v) % period - period / 2), px)
    raise ValueError(f"unknown pattern {pattern!r}")


def _render_object(
    cls: ObjectClass, config: BenchmarkConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One object instance: RGB in [0,1] (H,W,3) and its exact soft mask in [0,1] (H,W)."""
    size = config.image_size
    big = size * SUPERSAMPLE
    radius = rng.uniform(*config.object_scale) * big
    angle = math.radians(rng.uniform(-config.rotation_degrees, config.rotation_degrees))
    margin = radius * 0.8
    cx, cy = rng.uniform(margin, big - margin), rng.uniform(margin, big - margin)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])

    def to_canvas(points: np.ndarray) -> list[tuple[float, float]]:
        p = points @ rot.T * radius + np.array([cx, cy])
        return [tuple(q) for q in p]

    outline, hole = SHAPES[cls.shape]
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    draw.polygon(to_canvas(outline), fill=255)
    if hole is not None:
        hole(draw, to_canvas)
    mask = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float64) / 255.0

    hue = (cls.hue + rng.normal(0.0, 0.015)) % 1.0
    value = float(np.clip(rng.normal(0.85, 0.06), 0.55, 1.0))
    primary = np.array(colorsys.hsv_to_rgb(hue, 0.9, value))
    secondary = np.clip(np.array(cls.secondary) * rng.uniform(0.9, 1.1), 0, 1)
    field = _pattern_field(cls.pattern, size, angle)
    # centre the pattern on the object
    shift = (int(round((cy - big / 2) / SUPERSAMPLE)), int(round((cx - big / 2) / SUPERSAMPLE)))
    field = np.roll(field, shift, axis=(0, 1))
    rgb = primary * (1 - field[..., None]) + secondary * field[..., None]
    return rgb, mask


HOME_MARGIN = 1.5  # home scenes are drawn this much larger than an image; each shot crops them


def _view(scene: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop (and flip) of ``scene``: the camera moves, the place stays."""
    full = scene.shape[0]
    top, left = rng.integers(0, full - size + 1, size=2)
    crop = scene[top : top + size, left : left + size]
    return crop[:, ::-1] if rng.uniform() < 0.5 else crop


def generate_benchmark(
    out: str | Path,
    config: BenchmarkConfig = DEFAULT_BENCHMARK,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write the benchmark to ``out``; returns its manifest (also written to benchmark.json).

    Byte-for-byte reproducible for a given ``config`` (numpy PCG64 streams + PIL PNG encoding).
    The files are written to a sibling temporary folder that is renamed to ``out`` when complete,
    so an interrupted run never leaves a half-written benchmark behind.
    """
    out = check_output(out, "benchmark")  # --overwrite replaces a benchmark, nothing else
    ensure_writable_dir(out.parent)
    lock = FileLock(str(out.parent / f".{out.name}.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(f"{out}: another `bgbias data generate` is writing it") from None
    try:
        if out.exists() and contents(out) and not overwrite:
            raise DataError(f"{out}: exists and is not empty (pass overwrite=True / --overwrite)")
        for kind in ("partial", "replaced"):  # a killed earlier run's half-written/old tree
            for leftover in out.parent.glob(f".{out.name}.{kind}-*"):
                remove_tree(leftover)
        start_time = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.partial-") as tmp:
            manifest = _write_benchmark(Path(tmp), config, progress)
            manifest["seconds"] = round(time.perf_counter() - start_time, 3)
            write_json(Path(tmp) / "benchmark.json", manifest)
            mark_output(tmp, "benchmark")
            for name in contents(out) if out.exists() else []:  # the user's files stay
                if not os.path.lexists(Path(tmp) / name):
                    os.replace(out / name, Path(tmp) / name)
            # rename aside, then swap: a kill leaves either tree whole, never a half-deleted one
            aside = move_aside(out) if out.exists() else None
            os.replace(tmp, out)
            Path(tmp).mkdir()  # TemporaryDirectory cleans up a folder at its old name
            if aside is not None:
                remove_tree(aside)
    finally:
        lock.release()
    return manifest


def _write_benchmark(
    root: Path, config: BenchmarkConfig, progress: Callable[[int, int], None] | None
) -> dict:
    rng = np.random.default_rng(config.seed)
    classes = _draw_classes(config, rng)
    counts = {"train": config.train_classes, "val": config.val_classes, "test": config.test_classes}
    order = rng.permutation(len(classes))
    splits, start = {}, 0
    for split, count in counts.items():
        splits[split] = [classes[i].name for i in sorted(order[start : start + count])]
        start += count

    total = len(classes) * config.images_per_class
    size = config.image_size
    home_size = int(round(size * HOME_MARGIN))
    for index, cls in enumerate(classes):
        class_rng = np.random.default_rng([config.seed, 1, index])
        home = texture(np.random.default_rng(cls.home_seed), home_size, home_size)
        (root / "images" / cls.name).mkdir(parents=True)
        (root / "masks" / cls.name).mkdir(parents=True)
        for k in range(config.images_per_class):
            rgb, mask = _render_object(cls, config, class_rng)
            if class_rng.uniform() < config.home_probability:
                background = _view(home, size, class_rng)
            else:
                background = texture(np.random.default_rng(class_rng.integers(2**63)), size, size)
            background = background.astype(np.float64) / 255.0
            image = rgb * mask[..., None] + background * (1 - mask[..., None])
            name = f"{k:04d}.png"
            Image.fromarray(_to_uint8(image)).save(root / "images" / cls.name / name, **PNG_OPTIONS)
            Image.fromarray(_to_uint8(mask)).save(root / "masks" / cls.name / name, **PNG_OPTIONS)
            if progress is not None:
                progress(index * config.images_per_class + k + 1, total)
    write_json(root / "splits.json", splits)
    return {
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(config),
        "splits": {name: len(members) for name, members in splits.items()},
        "images": total,
        "classes": {c.name: dataclasses.asdict(c) for c in classes},
    }


def benchmark_matches(out: str | Path, config: BenchmarkConfig) -> bool:
    """True when ``out`` holds a complete benchmark generated with ``config``."""
    manifest_path = Path(out) / "benchmark.json"
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    expected = json.loads(json.dumps(dataclasses.asdict(config)))
    return manifest.get("format_version") == FORMAT_VERSION and manifest.get("config") == expected


def tree_digest(out: str | Path) -> str:
    """sha256 over every file's relative path and bytes (to check byte-for-byte reproducibility)."""
    digest = hashlib.sha256()
    root = Path(out)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "benchmark.json"):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return (np.clip(array, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
