"""What the paper's three datasets share: how it cuts a sorted class list into class-disjoint
splits (train, val, test)."""

from __future__ import annotations


def split_by_index(classes: list[str], val_start: int, test_start: int) -> dict[str, list[str]]:
    return {
        "train": classes[:val_start],
        "val": classes[val_start:test_start],
        "test": classes[test_start:],
    }
