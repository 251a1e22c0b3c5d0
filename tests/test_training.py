import shutil
import subprocess
import sys
import time

import lightning as L
import pytest
import torch

from bgbias.config import compose, to_dict
from bgbias.data.generate import BenchmarkConfig, generate_benchmark
from bgbias.errors import CheckpointError, ConfigError, DataError
from bgbias.losses import LOSSES
from bgbias.presets import preset_names
from bgbias.runs import load_trained_model
from bgbias.training import (
    EmbeddingModule,
    MaskedDataModule,
    TrainingDiverged,
    fit,
)
from tests.helpers import SHARED

PHOTOS = SHARED / "unsplash_backgrounds"

TINY = BenchmarkConfig(
    image_size=32, train_classes=8, val_classes=3, test_classes=3, images_per_class=6, seed=5
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "g"
    generate_benchmark(root, TINY)
    return root


def small(root, out, *extra):
    return [
        "data.root=" + str(root),
        "output_dir=" + str(out),
        "data.check_sizes=false",
        "model.pretrained=false",
        "data.num_workers=0",
        "data.batch_size=8",
        "data.iterations_per_epoch=2",
        "trainer.max_epochs=1",
        "backgrounds.source=procedural",
        "backgrounds.count=6",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
        *extra,
    ]


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_builds_model_loss_optimiser_and_data(name, bench, tmp_path):
    config = compose(name, small(bench, tmp_path))
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    module = EmbeddingModule(to_dict(config), datamodule.train_set.num_classes)
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"]
    spec = LOSSES.get(config.loss.name)
    assert type(module.loss_fn) is spec.factory
    assert module.model.embedding_size == 128
    assert module.model.recipe.name == datamodule.recipe.name
    assert optimizer.param_groups[0]["lr"] == config.optimizer.lr
    assert ("lr_scheduler" in configured) == (config.optimizer.scheduler != "constant")
    if spec.classification:
        assert optimizer.param_groups[1]["lr"] == config.loss.lr
        assert optimizer.param_groups[1]["params"][0] is next(module.loss_fn.parameters())
    else:
        assert len(optimizer.param_groups) == 1
    assert (datamodule.replacer is not None) == datamodule.val_set.has_masks
    batch = next(iter(datamodule.train_dataloader()))
    assert batch[0].shape[0] == 8 and len(set(batch[2].tolist())) == 8 // datamodule.m_per_class


@pytest.mark.parametrize("loss", list(LOSSES))
def test_one_optimisation_step_per_loss(loss, bench, tmp_path):
    # the paper's preset (BN-Inception, 227 px, RMSprop, lr_loss), without the ImageNet weights
    config = compose(
        f"cub200/{loss}/bgaugment",
        small(bench, tmp_path, "data.iterations_per_epoch=1", "validate_untrained=false"),
    )
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    module = EmbeddingModule(to_dict(config), datamodule.train_set.num_classes)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    after = module.state_dict()
    assert not torch.equal(before["model.head.weight"], after["model.head.weight"])
    if LOSSES.get(loss).classification:
        assert not torch.equal(before["loss_fn.W"], after["loss_fn.W"])
    # BatchNorm of a from-scratch backbone learns; running statistics moved
    assert not torch.equal(
        before["model.backbone.conv1_7x7_s2_bn.running_mean"],
        after["model.backbone.conv1_7x7_s2_bn.running_mean"],
    )


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


class StopAfterFirstEpoch(L.Callback):
    """Ends the run after epoch 0 as a kill would, with the schedule of the full run."""

    def on_validation_end(self, trainer, pl_module):
        if trainer.current_epoch == 0 and not trainer.sanity_checking:
            trainer.should_stop = True


def test_resume_gives_the_uninterrupted_result(bench, tmp_path):
    straight = compose(
        "generated/arcface/bgaugment", small(bench, tmp_path / "a", "trainer.max_epochs=2")
    )
    fit(straight)
    first = compose(
        "generated/arcface/bgaugment", small(bench, tmp_path / "b", "trainer.max_epochs=2")
    )
    assert first.optimizer.scheduler == "cosine"  # the schedule's state must resume too
    assert fit(first, callbacks=[StopAfterFirstEpoch()])["steps"] == 2
    resumed = compose(
        "generated/arcface/bgaugment",
        small(bench, tmp_path / "b", "trainer.max_epochs=2", "resume=true"),
    )
    assert fit(resumed)["steps"] == 4
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


class RecordValDraws(L.Callback):
    """The corrupted validation's background indices, per (epoch, trainer function)."""

    def __init__(self):
        self.draws = {}

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        key = (trainer.current_epoch, trainer.state.fn.value)
        self.draws.setdefault(key, module.val_draws.index.clone())


@pytest.mark.parametrize("redraw", [True, False])
def test_corrupted_validation_draws_per_epoch_and_resumes_them(bench, tmp_path, redraw):
    preset = "generated/triplet/base_corrupted"
    extra = ["trainer.max_epochs=3", f"backgrounds.val_redraw={redraw}"]
    straight = RecordValDraws()
    fit(compose(preset, small(bench, tmp_path / "a", *extra)), callbacks=[straight])
    draws = [straight.draws[(e, "fit")] for e in range(3)]
    assert torch.equal(straight.draws[(0, "validate")], draws[0])  # the untrained model's
    assert all(torch.equal(d, draws[0]) != redraw for d in draws[1:])
    first, resumed = RecordValDraws(), RecordValDraws()
    fit(compose(preset, small(bench, tmp_path / "b", *extra)), [StopAfterFirstEpoch(), first])
    fit(compose(preset, small(bench, tmp_path / "b", *extra, "resume=true")), [resumed])
    assert sorted(resumed.draws) == [(1, "fit"), (2, "fit")]
    for epoch in range(3):
        again = (first if epoch == 0 else resumed).draws[(epoch, "fit")]
        assert torch.equal(again, draws[epoch]), epoch


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


@pytest.mark.slow
@pytest.mark.skipif(not PHOTOS.is_dir(), reason="needs ../shared/data/unsplash_backgrounds")
def test_paper_preset_on_the_paper_photos_redraws_and_resumes(bench, tmp_path, monkeypatch):
    from bgbias.data.background_sets import fetch_background_set

    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    fetch_background_set("paper", source=PHOTOS, progress=False)
    preset = "cub200/contrastive/bgaugment"  # BN-Inception at 227 px, from scratch
    extra = ["trainer.max_epochs=2", "data.iterations_per_epoch=1", "validate_untrained=false"]
    paper = [o for o in small(bench, tmp_path / "x", *extra) if "backgrounds." not in o]
    straight, first, resumed = RecordValDraws(), RecordValDraws(), RecordValDraws()
    fit(compose(preset, [*paper, f"output_dir={tmp_path / 'a'}"]), callbacks=[straight])
    assert not torch.equal(straight.draws[(0, "fit")], straight.draws[(1, "fit")])
    out = f"output_dir={tmp_path / 'b'}"
    fit(compose(preset, [*paper, out]), callbacks=[StopAfterFirstEpoch(), first])
    fit(compose(preset, [*paper, out, "resume=true"]), callbacks=[resumed])
    assert torch.equal(first.draws[(0, "fit")], straight.draws[(0, "fit")])
    assert torch.equal(resumed.draws[(1, "fit")], straight.draws[(1, "fit")])
    trained = load_trained_model(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert trained.config.backgrounds.source == "paper"


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


def _files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.suffix != ".lock"}


@pytest.mark.parametrize(
    "bad",
    [
        "trainer.precision=foo",
        "data.batch_size=0",
        "trainer.max_epochs=0",
        "mode=fancy",
        "data.verify=some",
        "optimizer.scheduler=stepwise",
        "backgrounds.count=0",
    ],
)
def test_a_bad_config_touches_nothing_in_an_existing_run(bench, tmp_path, bad):
    fit(compose("generated/contrastive/base", small(bench, tmp_path)))
    before = _files(tmp_path)
    key, value = bad.split("=")
    with pytest.raises(ConfigError, match=key):
        compose("generated/contrastive/base", small(bench, tmp_path, "resume=true", bad))
    config = compose("generated/contrastive/base", small(bench, tmp_path, "resume=true"))
    section, _, field = key.rpartition(".")
    node = config[section] if section else config
    node[field] = int(value) if value.isdigit() else value  # a config edited after composing
    with pytest.raises(ConfigError, match=key):
        fit(config)
    assert _files(tmp_path) == before


def test_one_training_per_run_folder(bench, tmp_path):
    from filelock import FileLock

    from bgbias.training.run_folder import LOCK_FILE

    tmp_path.mkdir(exist_ok=True)
    busy = pytest.raises(ConfigError, match="another training is running")
    with FileLock(str(tmp_path / LOCK_FILE)), busy:
        fit(compose("generated/contrastive/base", small(bench, tmp_path)))
    assert not (tmp_path / "config.yaml").exists()


def test_a_fresh_run_never_mixes_with_a_previous_one(bench, tmp_path):
    fit(compose("generated/contrastive/base", small(bench, tmp_path)))
    before = _files(tmp_path)
    with pytest.raises(ConfigError, match="holds a previous run .* overwrite=true"):
        fit(compose("generated/triplet/base", small(bench, tmp_path)))
    assert _files(tmp_path) == before
    fit(compose("generated/triplet/base", small(bench, tmp_path, "overwrite=true")))
    assert "generated/triplet/base" in (tmp_path / "config.yaml").read_text()
    assert load_trained_model(tmp_path / "checkpoints" / "best.ckpt").config.loss.name == "triplet"
    assert not list(tmp_path.glob(".*replaced*"))


def test_a_damaged_resume_checkpoint_fails_before_training(bench, tmp_path):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cut.ckpt: not a readable checkpoint"):
        fit(compose("generated/contrastive/base", small(bench, tmp_path / "r", f"resume={cut}")))
    assert not (tmp_path / "r").exists()


def test_foreign_and_corrupt_checkpoints(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a bgbias checkpoint"):
        load_trained_model(tmp_path / "foreign.ckpt")
    (tmp_path / "cut.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_trained_model(tmp_path / "cut.ckpt")


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


@pytest.mark.slow
def test_kill_and_resume(bench, tmp_path):
    out = tmp_path / "killed"
    args = small(bench, out, "trainer.max_epochs=6", "data.iterations_per_epoch=12")
    process = subprocess.Popen(
        [sys.executable, "-m", "bgbias", "train", "generated/triplet/bgaugment", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline:
        time.sleep(0.05)
    # last.ckpt is written atomically, so it is complete once it exists: kill at once, while
    # the run is still in its first epochs (a later kill could land after the whole run)
    process.kill()  # SIGKILL
    process.wait()
    assert last.exists()
    step_killed = torch.load(last, weights_only=False)["global_step"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bgbias",
            "train",
            "generated/triplet/bgaugment",
            *args,
            "resume=true",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(last, weights_only=False)["global_step"] == 6 * 12 > step_killed


def test_cosine_schedule_decays_every_group_to_zero_over_the_run():
    from bgbias.optimizers import SCHEDULERS, build_optimizer

    weights, loss_weights = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = build_optimizer("adam", [weights], 1e-3, 0.0, 0.0, [loss_weights], 1e-2)
    scheduler = SCHEDULERS.get("cosine")(optimizer, 10)
    lrs = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append([group["lr"] for group in optimizer.param_groups])
    assert lrs[4] == pytest.approx([5e-4, 5e-3])
    assert lrs[-1] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert SCHEDULERS.get("constant")(optimizer, 10) is None


def test_a_run_folder_and_an_index_folder_never_take_each_other_over(bench, tmp_path):
    from bgbias.errors import OutputError
    from bgbias.search.build import build_index

    run, index = tmp_path / "run", tmp_path / "index"
    summary = fit(compose("generated/contrastive/base", small(bench, run)))
    build_index(summary["best_checkpoint"], bench, index, device="cpu", progress=False)
    runs, indexes = _files(run), _files(index)
    with pytest.raises(OutputError, match=f"{index}: holds a bgbias index output"):
        fit(compose("generated/contrastive/base", small(bench, index, "overwrite=true")))
    with pytest.raises(OutputError, match=f"{run}: holds a bgbias train output"):
        build_index(summary["best_checkpoint"], bench, run, device="cpu", progress=False)
    assert _files(run) == runs and _files(index) == indexes
