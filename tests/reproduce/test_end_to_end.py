"""`bgbias reproduce` for real: tiny generated presets are trained, evaluated and scored,
the run is stopped mid-training, resumed, and `report --compare paper` writes the tables."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bgbias.cli import main
from bgbias.data.generate import generate_benchmark
from bgbias.reproduce import status
from tests.reproduce.test_launchers import PATTERN, TINY, tiny_overrides


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_reproduce_stopped_mid_training_resumes_and_reports(tmp_path):
    generate_benchmark(tmp_path / "bench", TINY)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "bgbias", "reproduce", PATTERN, "--out", str(out),
        "--repeats", "2", "--attention-limit", "3",
        *tiny_overrides(tmp_path / "bench"), "trainer.max_epochs=3",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "generated" / "contrastive" / "base"
    last = first / "run" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)  # as a scheduler or a user stops the launcher
    assert process.wait(timeout=120) != 0
    assert last.exists(), "training never wrote a checkpoint"
    killed_at = torch.load(last, weights_only=False)["global_step"]
    assert killed_at < 3 * 2
    assert not _processes_mentioning(str(out))  # its stage processes were stopped too
    assert [row["state"] for row in status(out)] == ["interrupted", "pending"]

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    rows = status(out)
    assert [row["state"] for row in rows] == ["done", "done"]
    assert all(row["clean"] is not None and row["attention"] is not None for row in rows)
    log = (first / "log.txt").read_text()
    assert log.count("== train") == 2 and "resume=true" in log.split("== train")[-1]
    assert torch.load(last, weights_only=False)["global_step"] == 3 * 2

    assert main(["report", str(out), "--compare", "paper"]) == 0
    table = (out / "compare-paper.md").read_text()
    assert "| Contrastive | generated | " in table and "| Triplet | generated | " in table
    assert "| ArcFace | cub200 | – | 20.66 | – |" in table  # the paper's rows, ours missing
    assert all((out / f"compare-paper{s}").is_file() for s in (".tex", ".csv", ".png"))
    assert os.path.getsize(out / "status.md") > 0
