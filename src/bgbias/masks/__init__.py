"""Foreground masks for whole datasets: model files, the batched mask job, quality checks."""
