"""The generated benchmark (:mod:`bgbias.data.generate`): a laptop-CPU stand-in for the paper's
datasets, trained with a small CNN from scratch."""

from ..dataset_spec import DatasetSpec
from ..registry import register

GENERATED = register(
    DatasetSpec(
        "generated",
        "the generated benchmark",
        missing_hint="make it with `bgbias data generate {root}`",
        training={
            "data": {"root": "data/generated", "num_workers": 0, "cache_images": True},
            "model": {"backbone": "small_cnn", "pretrained": False, "embedding_size": 128},
            "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "cosine"},
            "trainer": {"max_epochs": 10},
        },
        # pytorch-metric-learning's defaults; lr_loss = the model's lr
        loss_params={
            "contrastive": {"params": {"pos_margin": 0.0, "neg_margin": 1.0}},
            "triplet": {"params": {"margin": 0.05}},
            "multi_similarity": {"params": {"alpha": 2.0, "beta": 50.0, "base": 0.5}},
            "arcface": {"params": {"margin": 28.6, "scale": 64.0}, "lr": 1e-3},
            "normalized_softmax": {"params": {"temperature": 0.05}, "lr": 1e-3},
        },
    )
)
