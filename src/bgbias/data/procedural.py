"""Seeded procedural textures: the generated benchmark's home scenes and procedural backgrounds.

Everything is drawn from a ``numpy.random.Generator`` so one seed gives the same pixels everywhere.
"""

from __future__ import annotations

import colorsys

import numpy as np


def random_color(rng: np.random.Generator, saturation=(0.35, 1.0), value=(0.25, 1.0)) -> np.ndarray:
    """One RGB colour in [0, 1], shape (3,)."""
    hue = rng.uniform(0.0, 1.0)
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(*saturation), rng.uniform(*value)))


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates scaled so that the shorter side spans [0, 1]."""
    scale = float(min(height, width))
    ys = (np.arange(height) + 0.5) / scale
    xs = (np.arange(width) + 0.5) / scale
    return np.meshgrid(ys, xs, indexing="ij")


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled uniform noise on a ``cells``-per-unit grid, values in [0, 1]."""
    y, x = _coords(height, width)
    gh, gw = int(np.ceil(y.max() * cells)) + 2, int(np.ceil(x.max() * cells)) + 2
    grid = rng.uniform(0.0, 1.0, size=(gh, gw))
    gy, gx = y * cells, x * cells
    y0, x0 = np.floor(gy).astype(int), np.floor(gx).astype(int)
    fy, fx = gy - y0, gx - x0
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _fbm(rng: np.random.Generator, height: int, width: int, octaves: int) -> np.ndarray:
    """Fractal noise in [0, 1]: octaves of smooth noise, each twice as fine and weaker."""
    persistence = rng.uniform(0.45, 0.7)
    field = sum(
        persistence**o * _smooth_noise(rng, height, width, 2 * 2**o) for o in range(octaves)
    )
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def _palette(rng: np.random.Generator, field: np.ndarray) -> np.ndarray:
    """Maps a [0, 1] field through 3 random colours (dark to light, muted to vivid)."""
    stops = np.sort(rng.uniform(0.05, 1.0, size=3))
    colours = [random_color(rng, saturation=(0.05, 0.8), value=(v * 0.9, v)) for v in stops]
    low, mid, high = (c[None, None, :] for c in colours)
    t = field[..., None]
    return np.where(t < 0.5, low + (mid - low) * (2 * t), mid + (high - mid) * (2 * t - 1))


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like scene, uint8 of shape (H, W, 3): fractal detail through a natural palette,
    sometimes fine oriented structure (grass, planks, fibres) and a hard edge (a wall, a
    horizon). Photo-like rather than cartoon-like so that a model trained on procedural
    backgrounds transfers to photos, and one trained on photos to the home scenes."""
    y, x = _coords(height, width)
    image = _palette(rng, _fbm(rng, height, width, octaves=5))
    if rng.uniform() < 0.5:  # fine oriented structure, modulated by a second field
        angle = rng.uniform(0, np.pi)
        freq = rng.uniform(6.0, 16.0)
        lines = 0.5 + 0.5 * np.sin(
            2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle))
            + 6 * _fbm(rng, height, width, octaves=3)
        )
        image = image * (1 - 0.35 * lines[..., None]) + 0.35 * lines[..., None] * image.mean()
    if rng.uniform() < 0.4:  # a hard edge between two regions
        angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(0.25, 0.75) * max(float(y.max()), float(x.max()))
        side = np.clip((x * np.cos(angle) + y * np.sin(angle) - offset) * min(height, width), 0, 1)
        other = _palette(rng, _fbm(rng, height, width, octaves=4))
        image = image * (1 - side[..., None]) + other * side[..., None]
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
