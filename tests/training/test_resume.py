"""A resumed run: the uninterrupted result, the same validation draws, after a kill, and
metrics.csv with each step once (bgbias.training.run_folder)."""

import csv
import shutil
import subprocess
import sys
import time

import lightning as L
import pytest
import torch

from bgbias.config import compose
from bgbias.runs import load_trained_model
from bgbias.training import fit
from tests.helpers import SHARED, small

PHOTOS = SHARED / "unsplash_backgrounds"


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


def rows(run):
    """(step, the columns logged) per row: a step logged twice shows as a repeated row."""
    with open(run / "metrics.csv", newline="") as handle:
        logged = list(csv.DictReader(handle))
    return sorted((row["step"], tuple(k for k, v in row.items() if v)) for row in logged)


def test_a_resume_from_an_earlier_checkpoint_logs_each_step_once(bench, tmp_path):
    run = tmp_path / "run"
    preset = "generated/triplet/base"
    fit(compose(preset, small(bench, run, "trainer.max_epochs=2")), [StopAfterFirstEpoch()])
    shutil.copy(run / "checkpoints" / "last.ckpt", tmp_path / "epoch1.ckpt")
    fit(compose(preset, small(bench, run, "trainer.max_epochs=2", "resume=true")))
    finished = rows(run)
    assert len(set(finished)) == len(finished)
    # killed after epoch 2 had been logged but before its checkpoint: resumed from epoch 1
    resume = f"resume={tmp_path / 'epoch1.ckpt'}"
    fit(compose(preset, small(bench, run, "trainer.max_epochs=2", resume)))
    assert rows(run) == finished
