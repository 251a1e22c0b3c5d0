"""Any dataset already in the generic folder layout (see :mod:`bgbias.data.datasets`)."""

from ..registry import DatasetSpec, register

FOLDER = register(DatasetSpec("folder", "any dataset in the generic folder layout"))
