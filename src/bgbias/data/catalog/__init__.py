"""One module per dataset, each registering its :class:`~bgbias.data.dataset_spec.DatasetSpec`."""

from . import cars196, cub200, folder, generated, sop  # noqa: F401
