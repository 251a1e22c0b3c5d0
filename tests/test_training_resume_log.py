"""metrics.csv after a kill and a resume: each step once (bgbias.training.run_folder)."""

import csv
import shutil

from bgbias.config import compose
from bgbias.training import fit
from tests.test_training import StopAfterFirstEpoch, bench, small  # noqa: F401 (a fixture)


def rows(run):
    """(step, the columns logged) per row: a step logged twice shows as a repeated row."""
    with open(run / "metrics.csv", newline="") as handle:
        logged = list(csv.DictReader(handle))
    return sorted((row["step"], tuple(k for k, v in row.items() if v)) for row in logged)


def test_a_resume_from_an_earlier_checkpoint_logs_each_step_once(bench, tmp_path):  # noqa: F811
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
