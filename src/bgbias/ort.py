"""The one place bgbias imports onnxruntime: with its telemetry switched off first.

onnxruntime >= 1.29 on Linux and macOS starts a telemetry uploader (to
mobile.events.data.microsoft.com) and writes a device id under ``~/.cache/Microsoft`` while it is
*imported*; only ``ORT_DISABLE_TELEMETRY=1`` set before that import stops all of it (the
``disable_telemetry_events()`` API only mutes later events). An explicit value the user set is
kept.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType

from .errors import BgbiasError

TELEMETRY_VARIABLE = "ORT_DISABLE_TELEMETRY"
log = logging.getLogger(__name__)


def import_onnxruntime() -> ModuleType:
    """``onnxruntime``, imported with its telemetry off (every bgbias use goes through here)."""
    imported_before = "onnxruntime" in sys.modules and TELEMETRY_VARIABLE not in os.environ
    os.environ.setdefault(TELEMETRY_VARIABLE, "1")
    try:
        import onnxruntime
    except ImportError:
        raise BgbiasError("ONNX models need onnxruntime (`pip install onnxruntime`)") from None
    if os.environ[TELEMETRY_VARIABLE] == "1":
        onnxruntime.disable_telemetry_events()  # mutes what an earlier import may have started
    if imported_before and not _warned:
        _warn_once()
    return onnxruntime


_warned = False


def _warn_once() -> None:
    global _warned
    _warned = True
    log.warning(
        "onnxruntime was imported before bgbias could switch its telemetry off; set %s=1 in "
        "the environment to keep it from writing a device id and reaching the network",
        TELEMETRY_VARIABLE,
    )
