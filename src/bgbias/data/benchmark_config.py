"""The sizes and difficulty of the generated benchmark (:mod:`bgbias.data.generate`), apart
from the generator so that the CLI can show their defaults without importing numpy or PIL."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class BenchmarkConfig:
    """Sizes and difficulty of the generated benchmark (defaults fit a 2-core laptop CPU)."""

    image_size: int = 64
    train_classes: int = 80  # with 40, object features carried over poorly to unseen test classes
    val_classes: int = 10
    test_classes: int = 30
    images_per_class: int = 20
    home_probability: float = 0.9  # chance that an image is shot on its class's home scene
    object_scale: tuple[float, float] = (0.3, 0.4)  # object radius / image side
    rotation_degrees: float = 25.0
    seed: int = 0

    def __post_init__(self):
        if self.image_size < 16:
            raise ConfigError("image_size must be at least 16")
        if min(self.train_classes, self.val_classes, self.test_classes) < 1:
            raise ConfigError("every split needs at least one class")
        if self.images_per_class < 2:
            raise ConfigError("images_per_class must be at least 2 (retrieval needs pairs)")
        if not 0.0 <= self.home_probability <= 1.0:
            raise ConfigError("home_probability must be in [0, 1]")
