"""Any dataset already in the generic folder layout (see :mod:`bgbias.data.layout`): your own
catalogue, trained with the ``folder/<loss>/<mode>`` presets."""

from ..dataset_spec import DatasetSpec
from ..registry import register

FOLDER = register(
    DatasetSpec(
        "folder",
        "a dataset folder",
        missing_hint="point data.root at a folder holding images/<class>/<photo> (with masks/ "
        "and splits.json: see docs/own-catalogue.md), e.g. data.root=data/shop",
    )
)
