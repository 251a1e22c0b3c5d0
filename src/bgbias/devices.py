"""Device names as users type them (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``), checked
once, with a clear error for a device this machine does not have."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str) -> str:
    """``name`` if it is a device name bgbias understands (no hardware check); for argparse."""
    if not DEVICE_PATTERN.match(name):
        raise ConfigError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N, mps")
    return name


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto``: the first CUDA GPU when torch sees one, else the CPU. A device this machine
    lacks raises a ConfigError naming it."""
    import torch  # here, not at the top: the CLI checks device names without loading torch

    if isinstance(name, torch.device):
        return name
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ConfigError(f"device {name!r}: this machine has {count} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: Apple MPS is not available here")
    return device
