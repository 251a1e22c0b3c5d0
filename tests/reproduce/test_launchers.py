"""Launchers: cells skipped when finished, resumed when interrupted, failures recorded and
reported; SLURM through submitit (its sbatch script, its local executor)."""

import json
import os

import pytest

from bgbias.cli import main
from bgbias.data.generate import BenchmarkConfig, generate_benchmark
from bgbias.errors import ConfigError
from bgbias.launch.slurm import time_minutes
from bgbias.reproduce import LaunchOptions, SlurmOptions, reproduce, status
from bgbias.reproduce import cell as cell_module
from bgbias.reproduce.state import read_state, update_state
from tests.helpers import fake_slurm

PATTERN = "generated/[ct]*/base"  # generated/contrastive/base and generated/triplet/base
TINY = BenchmarkConfig(
    image_size=32, train_classes=8, val_classes=3, test_classes=3, images_per_class=6, seed=5
)


def tiny_overrides(root):
    return [
        f"data.root={root}",
        "data.check_sizes=false",
        "data.num_workers=0",
        "data.batch_size=8",
        "data.iterations_per_epoch=2",
        "trainer.max_epochs=1",
        "backgrounds.count=6",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
    ]


class FakeStages:
    """Stands in for the stage processes: records calls, writes each stage's output, and
    fails the stages it is told to."""

    def __init__(self, fail=()):
        self.calls = []
        self.fail = set(fail)

    def __call__(self, cell, stage, env=None):
        self.calls.append((cell.preset, stage))
        if (cell.preset, stage) in self.fail:
            with open(cell.log, "a") as log:
                log.write("Traceback ...\nbgbias: error: something broke\n")
            return 1, "bgbias: error: something broke"
        output = cell.output(stage)
        output.parent.mkdir(parents=True, exist_ok=True)
        if stage == "evaluate":
            result = {"clean": {"map_at_r": 0.5}, "corrupted": {"map_at_r": {"mean": 0.25}}}
            output.write_text(json.dumps(result))
        elif stage == "attention":
            output.write_text(json.dumps({"k": {"mean": 0.125}}))
        else:
            output.write_bytes(b"checkpoint")
        return 0, None


def test_failed_cell_does_not_stop_the_others_and_reruns_skip_what_is_done(
    tmp_path, monkeypatch, capsys
):
    stages = FakeStages(fail={("generated/contrastive/base", "evaluate")})
    monkeypatch.setattr(cell_module, "run_stage", stages)
    out = tmp_path / "out"
    assert main(["reproduce", PATTERN, "--out", str(out), *tiny_overrides(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert stages.calls == [
        ("generated/contrastive/base", "train"),
        ("generated/contrastive/base", "evaluate"),
        ("generated/triplet/base", "train"),
        ("generated/triplet/base", "evaluate"),
        ("generated/triplet/base", "attention"),
    ]
    log = out / "generated/contrastive/base/log.txt"
    failed = "| generated/contrastive/base | failed | train | – | – | – | evaluate failed: bgbias:"
    assert f"{failed} error: something broke ({log}) |" in printed
    assert (
        "| generated/triplet/base | done | train,evaluate,attention | 50.00 | 25.00 | 0.125 |"
        in printed
    )
    assert (out / "status.md").read_text() in printed
    state = read_state(next(c for c in status_cells(out) if "contrastive" in c.preset))
    assert state["state"] == "failed" and state["done"] == ["train"]
    # the rerun runs only what is left: the failed cell from its failed stage
    stages.fail.clear()
    stages.calls.clear()
    assert main(["reproduce", PATTERN, "--out", str(out), *tiny_overrides(tmp_path)]) == 0
    assert stages.calls == [
        ("generated/contrastive/base", "evaluate"),
        ("generated/contrastive/base", "attention"),
    ]
    assert [row["state"] for row in status(out)] == ["done", "done"]
    assert main(["reproduce", "--status", str(out)]) == 0
    assert "2 cells: 2 done" in capsys.readouterr().out


def status_cells(out):
    from bgbias.reproduce.plan import find_cells

    return find_cells(out)


def test_an_interrupted_cell_shows_so_and_resumes(tmp_path, monkeypatch):
    stages = FakeStages()
    monkeypatch.setattr(cell_module, "run_stage", stages)
    out = tmp_path / "out"
    reproduce(PATTERN, out, tiny_overrides(tmp_path), stages="train")
    cell = status_cells(out)[0]
    update_state(cell, state="running", done=[])  # as a killed process leaves it
    assert status(out)[0]["state"] == "interrupted"
    stages.calls.clear()
    result = reproduce(PATTERN, out, tiny_overrides(tmp_path), stages="train")
    assert stages.calls == [(cell.preset, "train")] and not result.failed
    assert result.skipped == {"generated/triplet/base": "done"}


def test_local_launcher_runs_cells_at_once(tmp_path, monkeypatch):
    stages = FakeStages()
    monkeypatch.setattr(cell_module, "run_stage", stages)
    options = LaunchOptions(jobs=2)
    result = reproduce(PATTERN, tmp_path / "out", tiny_overrides(tmp_path), options=options)
    assert [row["state"] for row in result.rows] == ["done", "done"] and len(stages.calls) == 6


def test_dry_run_prints_the_commands_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["reproduce", PATTERN, "--out", str(out), "--dry-run", "--attention-limit", "9"]
    assert main([*args, *tiny_overrides(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "2 cell(s) under" in printed and "2 to run, 0 skipped" in printed
    assert f"bgbias attention {out}/generated/triplet/base/run/checkpoints/best.ckpt" in printed
    assert "--limit 9" in printed and not out.exists()


def test_slurm_without_sbatch_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    args = ["reproduce", PATTERN, "--out", str(tmp_path / "out"), "--launcher", "slurm"]
    assert main([*args, *tiny_overrides(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "bgbias: error: --launcher slurm: `sbatch` is not on the PATH (run bgbias on a SLURM "
        "login node, or use --launcher local)"
    ]
    assert not (tmp_path / "out").exists()


def test_slurm_submits_a_job_array_with_the_requested_resources(tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")  # in the dev extra; optional for users
    bin_dir = fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    args = [
        "reproduce", PATTERN, "--out", str(out), "--launcher", "slurm",
        "--slurm-partition", "gpu", "--slurm-gpus", "2", "--slurm-time", "1-12:00:00",
        "--slurm-option", "account=dml", "--slurm-option=--qos=high",
        "--slurm-setup", "source /opt/venv/bin/activate", *tiny_overrides(tmp_path),
    ]  # fmt: skip
    assert main(args) == 0
    scripts = sorted(bin_dir.glob("submitted-*.sh"))
    assert len(scripts) == 1  # one array for both cells
    script = scripts[0].read_text()
    for line in (
        "#SBATCH --array=0-1%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --time=2160",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --account=dml",
        "#SBATCH --qos=high",
        "#SBATCH --job-name=bgbias-reproduce",
        "source /opt/venv/bin/activate",
    ):
        assert line in script.splitlines(), line
    assert f"-m submitit.core._submit {out}/.submitit/%j" in script.replace("'", "")
    assert [row["state"] for row in status(out)] == ["queued", "queued"]
    assert [row["job"] for row in status(out)] == ["4242_0", "4242_1"]
    # queued cells are not submitted twice
    capsys.readouterr()
    assert main(args) == 0
    assert len(list(bin_dir.glob("submitted-*.sh"))) == 1
    printed = capsys.readouterr().out
    assert "skipped generated/contrastive/base: queued (job 4242_0; --resubmit to" in printed
    assert main([*args, "--resubmit", "--slurm-no-array"]) == 0
    assert len(list(bin_dir.glob("submitted-*.sh"))) == 3  # one job per cell


def test_slurm_dry_run_shows_the_sbatch_script(tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")  # in the dev extra; optional for users
    bin_dir = fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    args = ["reproduce", PATTERN, "--out", str(tmp_path / "out"), "--launcher", "slurm"]
    assert main([*args, "--dry-run", "--slurm-time", "90", *tiny_overrides(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "#SBATCH --time=90" in printed and "#SBATCH --array=0-1%2" in printed
    assert not list(bin_dir.glob("submitted-*")) and not (tmp_path / "out").exists()


def test_slurm_time_limits():
    assert [time_minutes(t) for t in ("90", "1:30:00", "45:30", "2-00", "1-02:03:04")] == [
        90,
        90,
        46,
        2880,
        1564,
    ]
    with pytest.raises(ConfigError, match="--slurm-time 'soon'"):
        time_minutes("soon")


@pytest.mark.slow
def test_slurm_launcher_runs_cells_through_submitits_local_executor(tmp_path):
    pytest.importorskip("submitit")
    generate_benchmark(tmp_path / "bench", TINY)
    out = tmp_path / "out"
    options = LaunchOptions(wait=True, slurm=SlurmOptions(cluster="local", time="20"))
    result = reproduce(
        "generated/triplet/base*",  # base, base_corrupted: a job array of two
        out,
        tiny_overrides(tmp_path / "bench"),
        stages="train,evaluate",
        launcher="slurm",
        options=options,
        repeats=1,
    )
    assert [row["state"] for row in result.rows] == ["done", "done"], [
        (row["log"], row["error"]) for row in result.rows
    ]
    assert all(row["clean"] is not None and row["job"] for row in result.rows)
    assert len(list((out / ".submitit").glob("*/*_result.pkl"))) == 2  # submitit's own record
