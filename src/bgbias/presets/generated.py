"""The generated benchmark's presets: a small CNN trained from scratch on a laptop CPU."""

from __future__ import annotations

from . import PresetFamily, register

# pytorch-metric-learning's defaults; the classification losses' parameters at the model's lr
GENERIC_LOSS_PARAMS = {
    "contrastive": {"params": {"pos_margin": 0.0, "neg_margin": 1.0}},
    "triplet": {"params": {"margin": 0.05}},
    "multi_similarity": {"params": {"alpha": 2.0, "beta": 50.0, "base": 0.5}},
    "arcface": {"params": {"margin": 28.6, "scale": 64.0}, "lr": 1e-3},
    "normalized_softmax": {"params": {"temperature": 0.05}, "lr": 1e-3},
}

GENERATED = register(
    PresetFamily(
        "generated",
        "generated",
        "the generated benchmark, small CNN from scratch",
        training={
            "data": {"root": "data/generated", "num_workers": 0, "cache_images": True},
            "model": {"backbone": "small_cnn", "pretrained": False, "embedding_size": 128},
            "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "cosine"},
            "trainer": {"max_epochs": 10},
        },
        loss_params=GENERIC_LOSS_PARAMS,
    )
)
