"""A run folder: one training at a time, never mixed with a previous run or an index, and
its checkpoints (bgbias.training.run_folder)."""

import pytest
import torch

from bgbias.config import compose
from bgbias.errors import CheckpointError, ConfigError
from bgbias.runs import load_trained_model
from bgbias.training import fit
from tests.helpers import small


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
