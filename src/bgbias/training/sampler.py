"""The training sampler: pytorch-metric-learning's MPerClassSampler, seeded per (epoch, rank)."""

from __future__ import annotations

import numpy as np
from pytorch_metric_learning.samplers import MPerClassSampler
from pytorch_metric_learning.utils import common_functions as pml_common
from torch.utils.data import Sampler


class SeededMPerClassSampler(Sampler[tuple[int, int]]):
    """pytorch-metric-learning's MPerClassSampler, drawing from its own seed per (epoch, rank).

    Yields ``(index, seed)`` pairs: the dataset draws each sample's crop and flip from its seed,
    so an epoch's data is a function of (seed, epoch, rank) alone, with any number of workers,
    and a resumed run sees what the uninterrupted one did; DDP ranks draw different batches.
    """

    def __init__(
        self,
        labels: np.ndarray,
        m: int,
        batch_size: int,
        length: int,
        seed: int,
        rank: int = 0,
        epoch: int = 0,
    ):
        self.sampler = MPerClassSampler(
            labels, m, batch_size=batch_size, length_before_new_iter=length
        )
        self.seed, self.rank, self.epoch = seed, rank, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        state = np.random.SeedSequence([self.seed, self.epoch, self.rank])
        self.sampler.labels = sorted(self.sampler.labels_to_indices)  # PML shuffles it in place
        saved = pml_common.NUMPY_RANDOM
        pml_common.NUMPY_RANDOM = np.random.RandomState(state.generate_state(4))
        try:
            indices = [int(i) for i in self.sampler]
        finally:
            pml_common.NUMPY_RANDOM = saved
        seeds = state.spawn(1)[0].generate_state(len(indices), dtype=np.uint64) >> np.uint64(1)
        return iter(zip(indices, seeds.tolist(), strict=True))
