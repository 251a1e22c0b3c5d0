"""A name -> object registry, as timm and pytorch-metric-learning users know it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries; unknown names raise a ConfigError listing the valid ones.

    ``providers``: modules that register entries, imported on the first lookup (a registry
    defined upstream, such as the transform recipes, is filled by the backbones downstream).
    """

    def __init__(self, kind: str, providers: tuple[str, ...] = ()):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._providers = providers

    def _load_providers(self) -> None:
        providers, self._providers = self._providers, ()
        for module in providers:
            importlib.import_module(module)

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """``registry.register("name", obj)`` or ``@registry.register("name")``."""
        if entry is not None:
            self._add(name, entry)
            return entry

        def decorator(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorator

    def _add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        self._load_providers()
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load_providers()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_providers()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load_providers()
        return len(self._entries)
