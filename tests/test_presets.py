"""Presets: each family one registry entry; the folder presets fine-tune on a user's folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bgbias.cli import main
from bgbias.config import compose
from bgbias.data.generate import BenchmarkConfig, generate_benchmark
from bgbias.data.registry import DATASETS
from bgbias.errors import ConfigError, DataError
from bgbias.presets import FAMILIES, MODES, preset_names
from bgbias.training import fit


def test_every_family_trains_a_registered_dataset_with_every_loss_and_mode():
    for name in FAMILIES:
        family = FAMILIES.get(name)
        assert family.dataset in DATASETS
        assert len(family.loss_params) == 5
    assert len(preset_names()) == len(FAMILIES) * 5 * len(MODES)


def test_folder_preset_fine_tunes_a_pretrained_backbone_into_a_run_named_after_the_folder():
    config = compose("folder/normalized_softmax/bgaugment", ["data.root=/data/my-shop"])
    assert config.data.dataset == "folder" and config.data.root == "/data/my-shop"
    assert (config.model.backbone, config.model.pretrained) == ("efficientnet_lite0", True)
    assert config.optimizer.lr == 1e-4 and config.loss.lr == 1e-2 and config.mode == "bgaugment"
    assert config.data.m_per_class == 4  # small catalogues: 8 products fill a batch of 32
    assert Path(config.output_dir) == Path("runs/my-shop/normalized_softmax/bgaugment")
    assert compose("cub200/triplet/base").output_dir == str(Path("runs/cub200/triplet/base"))
    explicit = compose("folder/triplet/base", ["data.root=/x/shop", "output_dir=elsewhere"])
    assert explicit.output_dir == "elsewhere"


def test_print_config_shows_every_key_and_trains_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "folder/triplet/bgaugment", "data.root=shop", "trainer.max_epochs=3"]
    assert main([*argv, "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["max_epochs"] == 3 and printed["loss"]["name"] == "triplet"
    assert set(printed) >= {"data", "backgrounds", "model", "loss", "optimizer", "trainer"}
    assert not (tmp_path / "runs").exists()


def test_a_mistyped_folder_says_what_a_dataset_folder_holds(tmp_path):
    config = compose("folder/triplet/base", [f"data.root={tmp_path / 'shpo'}"])
    with pytest.raises(DataError, match=r"shpo: a dataset folder not found; .*images/<class>"):
        fit(config)


def test_a_catalogue_too_small_for_the_batch_says_the_batch_that_fits(tmp_path):
    tiny = BenchmarkConfig(
        image_size=32, train_classes=3, val_classes=2, test_classes=2, images_per_class=4
    )
    generate_benchmark(tmp_path / "shop", tiny)
    overrides = [f"data.root={tmp_path / 'shop'}", f"output_dir={tmp_path / 'run'}"]
    with pytest.raises(ConfigError, match=r"has 3: set data.batch_size=12 .*more classes"):
        fit(compose("folder/triplet/base", [*overrides, "data.num_workers=0"]))
