"""fit(config): a run end to end, and what it checks before training (bgbias.training.fit)."""

import shutil
import subprocess
import sys

import lightning as L
import pytest
import torch

from bgbias.config import compose
from bgbias.errors import ConfigError, DataError
from bgbias.runs import load_trained_model
from bgbias.training import TrainingDiverged, fit
from tests.helpers import small


def test_fit_writes_run_folder_and_checkpoints(bench, tmp_path):
    config = compose(
        "generated/multi_similarity/bgaugment",
        small(bench, tmp_path / "run", "trainer.max_epochs=2"),
    )
    summary = fit(config)
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert summary["best_checkpoint"] == str(run / "checkpoints" / "best.ckpt")
    assert (run / "checkpoints" / "last.ckpt").is_file() and summary["steps"] == 4
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert "val/clean/map_at_r" in header and "val/corrupted/map_at_r" in header
    val_rows = [r for r in rows if r.split(",")[header.split(",").index("val/corrupted/map_at_r")]]
    assert len(val_rows) == 3  # the untrained model first, then every epoch
    trained = load_trained_model(run / "checkpoints" / "best.ckpt")
    assert trained.config.name == "generated/multi_similarity/bgaugment"
    assert not trained.model.training


def test_lightning_info_lines_only_with_verbose(bench, tmp_path):
    # the CLI as users run it: Lightning's import resets its loggers to INFO after the CLI
    # chose their level, so only a real process shows whether the banners stay hidden
    banners = ("GPU available", "Tip:", "Automatic Mixed Precision", "`Trainer.fit` stopped")
    stderr = {}
    for verbose in ([], ["-v"]):
        out = tmp_path / ("verbose" if verbose else "quiet")
        overrides = small(bench, out, "validate_untrained=false", "trainer.precision=bf16-mixed")
        command = [sys.executable, "-m", "bgbias", *verbose, "train", "generated/triplet/base"]
        result = subprocess.run([*command, *overrides], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        stderr[bool(verbose)] = result.stderr
    assert [b for b in banners if b in stderr[False]] == [], stderr[False]
    assert [b for b in banners if b not in stderr[True]] == [], stderr[True]


def test_paper_preset_without_photos_stops_at_once_with_fetch_hint(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "empty-home"))
    config = compose(
        "cub200/arcface/bgaugment",
        [o for o in small(bench, tmp_path / "run") if not o.startswith("backgrounds.source")],
    )
    assert config.backgrounds.source == "paper" and config.backgrounds.val_redraw
    with pytest.raises(DataError, match=r"not installed .*run `bgbias backgrounds fetch paper`"):
        fit(config)
    assert not (tmp_path / "run").exists()
    generated = compose("generated/arcface/bgaugment")
    assert generated.backgrounds.source == "procedural" and not generated.backgrounds.val_redraw


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(bench, tmp_path):
    fit(compose("generated/contrastive/base", small(bench, tmp_path)))
    last = tmp_path / "checkpoints" / "last.ckpt"
    good = last.read_bytes()

    class Poison(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            with torch.no_grad():
                module.model.head.weight.fill_(float("nan"))

    config = compose(
        "generated/contrastive/base", small(bench, tmp_path, "trainer.max_epochs=2", "resume=true")
    )
    with pytest.raises(TrainingDiverged, match=r"loss 'contrastive' became nan at step 2"):
        fit(config, callbacks=[Poison()])
    assert last.read_bytes() == good


def test_bgaugment_without_masks_says_how_to_make_them(bench, tmp_path):
    root = tmp_path / "nomasks"
    shutil.copytree(bench, root)
    shutil.rmtree(root / "masks")
    with pytest.raises(DataError, match=r"bgbias masks .*/images .*/masks"):
        fit(compose("generated/triplet/bgaugment", small(root, tmp_path / "run")))
    fit(compose("generated/triplet/base", small(root, tmp_path / "run2")))  # clean training works


def test_num_classes_must_match_the_train_split(bench, tmp_path):
    with pytest.raises(ConfigError, match="loss.num_classes=99 but the train split .* has 8"):
        fit(compose("generated/arcface/base", small(bench, tmp_path, "loss.num_classes=99")))


def test_batch_needs_enough_classes(bench, tmp_path):
    with pytest.raises(ConfigError, match="needs 16 train classes"):
        fit(compose("generated/triplet/base", small(bench, tmp_path, "data.batch_size=64")))


def test_paper_dataset_sizes_are_checked(bench, tmp_path):
    overrides = [o for o in small(bench, tmp_path) if not o.startswith("data.check_sizes")]
    with pytest.raises(DataError, match="train split has 8 classes, CUB-200-2011 .* has 75"):
        fit(compose("cub200/triplet/base", overrides))


def test_unknown_names_list_the_valid_ones(bench, tmp_path):
    with pytest.raises(ConfigError, match="loss.name='magic' is not one of arcface, contrastive"):
        fit(compose("generated/triplet/base", small(bench, tmp_path, "loss.name=magic")))
    with pytest.raises(ConfigError, match="unknown backbone 'resnet9000'; valid: bninception"):
        fit(compose("generated/triplet/base", small(bench, tmp_path, "model.backbone=resnet9000")))


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(bench, tmp_path):
    from bgbias.data.registry import open_split
    from bgbias.data.transforms import PairedTransform
    from bgbias.evaluation import embed
    from bgbias.metrics import retrieval_metrics

    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "bgbias",
        "train",
        "generated/multi_similarity/base",
        *small(
            bench,
            out,
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "trainer.max_epochs=2",
            "data.batch_size=8",
        ),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("val/clean/map_at_r")
    logged = [float(r.split(",")[column]) for r in rows if r.split(",")[column]]
    # the last epoch's validation, gathered over both processes, equals one process's
    module = load_trained_model(out / "checkpoints" / "last.ckpt")
    val = open_split("generated", bench, "val", PairedTransform(module.model.recipe, False))
    single = retrieval_metrics(embed(module.model, val, progress=False).clean, val.labels)
    assert logged[-1] == pytest.approx(single["map_at_r"], abs=1e-5)
