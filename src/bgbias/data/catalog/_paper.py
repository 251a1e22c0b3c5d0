"""What the paper's three datasets share: its training setup (PAPER.md sections 4-5) and how it
cuts a sorted class list into class-disjoint splits (section 2)."""

from __future__ import annotations

import copy
from typing import Any

PAPER_TRAINING: dict[str, Any] = {
    "model": {"backbone": "bninception", "pretrained": True, "embedding_size": 128},
    "optimizer": {"name": "rmsprop", "lr": 1e-6, "weight_decay": 1e-4, "momentum": 0.9},
    # the paper's 100 + 100 photos (PAPER.md section 4), fresh validation draws every epoch
    "backgrounds": {"source": "paper", "val_redraw": True},
}


def paper_training(root: str) -> dict[str, Any]:
    """The paper's setup, reading the dataset from ``root``."""
    return copy.deepcopy(PAPER_TRAINING) | {"data": {"root": root}}


def split_by_index(classes: list[str], val_start: int, test_start: int) -> dict[str, list[str]]:
    return {
        "train": classes[:val_start],
        "val": classes[val_start:test_start],
        "test": classes[test_start:],
    }
