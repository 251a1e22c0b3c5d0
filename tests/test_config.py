import pytest

from bgbias.config import (
    CLEAN_MONITOR,
    CORRUPTED_MONITOR,
    compose,
    from_dict,
    monitor_key,
    to_dict,
)
from bgbias.errors import ConfigError
from bgbias.presets import preset, preset_names


def test_paper_presets_are_all_there():
    names = preset_names()
    for dataset in ("cars196", "cub200", "sop"):
        for loss in ("contrastive", "triplet", "multi_similarity", "arcface", "normalized_softmax"):
            for mode in ("base", "bgaugment", "base_corrupted"):
                assert f"{dataset}/{loss}/{mode}" in names
    assert any(n.startswith("generated/") for n in names)
    assert len(names) == len(set(names))


def test_paper_hyperparameters():
    c = compose("cub200/arcface/bgaugment")
    assert c.loss.name == "arcface" and c.loss.params == {"margin": 23.226, "scale": 100.0}
    assert c.loss.lr == pytest.approx(5.1384e-3)
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.weight_decay, c.optimizer.momentum) == (
        "rmsprop",
        1e-6,
        1e-4,
        0.9,
    )
    assert (c.data.batch_size, c.data.iterations_per_epoch, c.trainer.patience, c.seed) == (
        32,
        100,
        15,
        42,
    )
    assert (
        c.model.backbone == "bninception" and c.model.embedding_size == 128 and c.model.pretrained
    )
    assert c.mode == "bgaugment" and monitor_key(c) == CORRUPTED_MONITOR
    base = compose("sop/contrastive/base")
    assert base.loss.params == {"pos_margin": 0.2850, "neg_margin": 0.5130}
    assert base.mode == "base" and monitor_key(base) == CLEAN_MONITOR
    corrupted = compose("cars196/multi_similarity/base_corrupted")
    assert corrupted.mode == "base_corrupted" and monitor_key(corrupted) == CORRUPTED_MONITOR
    assert corrupted.loss.params == {"alpha": 14.359, "beta": 75.835, "base": 0.6616}


def test_dotted_overrides_are_typed():
    c = compose(
        "cub200/triplet/base",
        [
            "trainer.max_epochs=3",
            "loss.params.margin=0.2",
            "data.root=/x",
            "model.pretrained=false",
        ],
    )
    assert c.trainer.max_epochs == 3 and c.loss.params.margin == 0.2
    assert c.data.root == "/x" and c.model.pretrained is False
    assert c.output_dir == "runs/cub200/triplet/base"


def test_bad_overrides():
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        compose("cub200/triplet/base", ["trainer.max_epochs=lots"])
    with pytest.raises(ConfigError, match="nope"):
        compose("cub200/triplet/base", ["trainer.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        compose("cub200/triplet/base", ["trainer.max_epochs"])


def test_unknown_preset_lists_how_to_find_them():
    with pytest.raises(ConfigError, match="bgbias list presets"):
        preset("cub200/magic/base")


def test_round_trip_through_a_dict():
    c = compose("generated/normalized_softmax/bgaugment", ["seed=7"])
    assert from_dict(to_dict(c)) == c
