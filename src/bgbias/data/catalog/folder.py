"""Any dataset already in the generic folder layout (see :mod:`bgbias.data.datasets`)."""

from ..dataset_spec import DatasetSpec
from ..registry import register

FOLDER = register(DatasetSpec("folder", "any dataset in the generic folder layout"))
