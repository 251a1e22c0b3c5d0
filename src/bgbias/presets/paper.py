"""The paper's presets (Kobs & Hotho 2022, training setup): BN-Inception pretrained on ImageNet,
RMSprop at lr 1e-6, the 100 + 100 background photos with fresh corrupted-validation draws every
epoch, and each loss's hyperparameters as the paper tuned them per dataset."""

from __future__ import annotations

import copy
from typing import Any

from . import PresetFamily, register

PAPER_TRAINING: dict[str, Any] = {
    "model": {"backbone": "bninception", "pretrained": True, "embedding_size": 128},
    "optimizer": {"name": "rmsprop", "lr": 1e-6, "weight_decay": 1e-4, "momentum": 0.9},
    "backgrounds": {"source": "paper", "val_redraw": True},
}


def _paper(dataset: str, description: str, loss_params: dict[str, dict[str, Any]]):
    training = copy.deepcopy(PAPER_TRAINING) | {"data": {"root": f"data/{dataset}"}}
    return register(PresetFamily(dataset, dataset, description, training, loss_params))


CARS196 = _paper(
    "cars196",
    "the paper's Cars196 runs",
    {
        "contrastive": {"params": {"pos_margin": 0.2652, "neg_margin": 0.5409}},
        "triplet": {"params": {"margin": 0.1190}},
        "multi_similarity": {"params": {"alpha": 14.359, "beta": 75.835, "base": 0.6616}},
        "arcface": {"params": {"margin": 20.522, "scale": 49.502}, "lr": 7.3985e-6},
        "normalized_softmax": {"params": {"temperature": 0.08863}, "lr": 1.1046e-2},
    },
)
CUB200 = _paper(
    "cub200",
    "the paper's CUB-200-2011 runs",
    {
        "contrastive": {"params": {"pos_margin": -0.2000, "neg_margin": 0.3841}},
        "triplet": {"params": {"margin": 0.0961}},
        "multi_similarity": {"params": {"alpha": 0.0100, "beta": 50.602, "base": 0.5625}},
        "arcface": {"params": {"margin": 23.226, "scale": 100.0}, "lr": 5.1384e-3},
        "normalized_softmax": {"params": {"temperature": 0.10875}, "lr": 4.4689e-3},
    },
)
SOP = _paper(
    "sop",
    "the paper's Stanford Online Products runs",
    {
        "contrastive": {"params": {"pos_margin": 0.2850, "neg_margin": 0.5130}},
        "triplet": {"params": {"margin": 0.0452}},
        "multi_similarity": {"params": {"alpha": 8.4925, "beta": 57.389, "base": 0.4167}},
        "arcface": {"params": {"margin": 18.632, "scale": 220.36}, "lr": 2.0187e-3},
        "normalized_softmax": {"params": {"temperature": 0.06306}, "lr": 5.4683e-4},
    },
)
