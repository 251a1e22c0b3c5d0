"""Datasets, masks-aware transforms and background banks (a regular package, so tools that read
the source, such as the API reference's docstring loader, find its modules)."""
