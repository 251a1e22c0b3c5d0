"""The generated benchmark (:mod:`bgbias.data.generate`): a laptop-CPU stand-in for the paper's
datasets (its presets: :mod:`bgbias.presets.generated`)."""

from ..dataset_spec import DatasetSpec
from ..registry import register

GENERATED = register(
    DatasetSpec(
        "generated",
        "the generated benchmark",
        missing_hint="make it with `bgbias data generate {root}`",
    )
)
