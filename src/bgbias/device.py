"""``--device`` strings (auto, cpu, cuda, cuda:N) to a checked ``torch.device``."""

from __future__ import annotations

import torch

from .errors import BgbiasError


class DeviceError(BgbiasError):
    """A device that is not a valid name or not present on this machine."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is the first CUDA GPU torch sees, else the CPU; others are checked to exist."""
    if isinstance(device, torch.device):
        device = str(device)
    text = device.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    kind, _, index = text.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DeviceError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise DeviceError(f"--device {device}: torch sees no CUDA GPU on this machine")
    if index and int(index) >= count:
        raise DeviceError(
            f"--device {device}: no such GPU (torch sees {count}: cuda:0..{count - 1})"
        )
    return torch.device(text)
