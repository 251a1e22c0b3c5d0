"""`bgbias masks --shards N`: every shard run here or submitted as one SLURM job array (through
a fake sbatch), and a rerun launches only the shards not finished."""

import os

import pytest

import bgbias.masks.predictors as predictors
from bgbias.cli import main
from bgbias.masks.predictors import OnnxU2NetPredictor
from tests.helpers import fake_slurm, run_slurm_jobs, write_onnx_masker
from tests.masks.test_generate import make_images, mask_files


def test_slurm_shards_rerun_submits_only_the_unfinished_one(tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    pytest.importorskip("cv2")  # grabcut: a mask model the jobs load without weights
    bin_dir = fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    images, masks = make_images(tmp_path / "images", count=9), tmp_path / "masks"
    argv = ["masks", str(images), str(masks), "--model", "grabcut", "--device", "cpu"]
    argv += ["--launcher", "slurm", "--shards", "3", "--slurm-partition", "cpu"]
    assert main(argv) == 0
    script = next(bin_dir.glob("submitted-*.sh")).read_text().splitlines()
    assert "#SBATCH --array=0-2%3" in script and "#SBATCH --job-name=bgbias-masks" in script
    assert "#SBATCH --partition=cpu" in script
    assert run_slurm_jobs(bin_dir, lost=(2,)) == 2  # shard 2's node died
    assert len(mask_files(masks)) == 6
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 of 3 shard(s) already finished" in printed and "submitted shard(s) 2 of 3" in printed
    assert len(list(bin_dir.glob("submitted-*.sh"))) == 2
    assert run_slurm_jobs(bin_dir) == 1
    assert len(mask_files(masks)) == 9
    assert main(argv) == 0
    assert "all 3 shard(s) finished" in capsys.readouterr().out
    assert len(list(bin_dir.glob("submitted-*.sh"))) == 2  # nothing submitted


def test_local_shards_run_here_and_a_rerun_runs_only_the_unfinished(tmp_path, monkeypatch, capsys):
    model = write_onnx_masker(tmp_path / "masker.onnx")
    monkeypatch.setattr(predictors, "PREDICTORS", predictors.Registry("mask model"))
    predictors.PREDICTORS.register("u2net", lambda *options: OnnxU2NetPredictor(model))
    images, masks = make_images(tmp_path / "images", count=6), tmp_path / "masks"
    argv = ["masks", str(images), str(masks), "--device", "cpu", "--shards", "2"]
    assert main(argv) == 0
    assert "ran shard(s) 0, 1 of 2: 6 mask(s) written" in capsys.readouterr().out
    lost = sorted(mask_files(masks))[0]  # every second image from the first: shard 0's
    lost.unlink()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 shard(s) already finished" in printed
    assert "ran shard(s) 0 of 2: 1 mask(s) written, 2 already there, 0 failed" in printed
    assert lost.is_file()


def test_one_shard_by_hand_and_all_shards_at_once_do_not_mix(tmp_path, capsys):
    images = make_images(tmp_path / "images", count=2)
    argv = ["masks", str(images), str(tmp_path / "masks"), "--shard", "0/2", "--shards", "2"]
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert (
        error == "bgbias: error: --shard K/N runs one shard by hand; --shards N launches them all"
    )
