"""How much the libraries bgbias drives may print: the CLI's ``-v`` shows Lightning's info lines
(GPU available, the logger tip, the AMP line, LOCAL_RANK, "`Trainer.fit` stopped"); without it
only its warnings. Used as a library, bgbias leaves Lightning's loggers as they are."""

from __future__ import annotations

import logging

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")  # the parents of all of its loggers

_lightning_level: int | None = None  # None: not chosen (bgbias used as a library)


def show_library_info(shown: bool) -> None:
    """Let Lightning's info lines through (``-v``) or hold them back (the CLI's default)."""
    global _lightning_level
    _lightning_level = logging.INFO if shown else logging.WARNING
    apply_library_levels()


def apply_library_levels() -> None:
    """Set Lightning's loggers to the chosen level. Call it once Lightning is imported: its
    import sets its loggers to INFO, undoing a level chosen before."""
    if _lightning_level is None:
        return
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(_lightning_level)
