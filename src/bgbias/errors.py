"""Exceptions with messages meant for the user: each names the file or setting at fault."""

from __future__ import annotations


class BgbiasError(Exception):
    """Base class of every error bgbias raises on purpose."""


class DataError(BgbiasError):
    """A dataset, image, mask or background folder is missing, malformed or inconsistent."""


class DataProblems(DataError):
    """Several data problems found at once; ``problems`` lists one message per problem."""

    def __init__(self, root: object, problems: list[str]):
        self.root = root
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = len(self.problems) - 20
        tail = (
            f"\n  ... and {more} more (run `bgbias data check {root}` for all)" if more > 0 else ""
        )
        if len(self.problems) == 1:  # one problem: one line
            super().__init__(f"problem in {root}: {self.problems[0]}")
        else:
            super().__init__(f"{len(self.problems)} problem(s) in {root}:\n{shown}{tail}")


class MissingMasksError(DataError):
    """A dataset without the masks that BGAugment or a background-replaced evaluation needs."""


class OutputError(BgbiasError):
    """An output location that cannot be written (read-only, full, not a folder)."""


class ConfigError(BgbiasError):
    """An unknown name or an invalid value in a configuration."""


class CheckpointError(BgbiasError):
    """A checkpoint file that is corrupt, foreign, or from an incompatible bgbias version."""


class ModelOutputError(BgbiasError):
    """A model whose output is not (batch, dim) finite embeddings."""
