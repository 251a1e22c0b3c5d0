"""docs/own-catalogue.md, executed: every ```bash block of the guide runs, in order, in a folder
holding a tiny catalogue this test makes (``photos/<product>/<photo>.jpg``).

The rules, so the page stays honest user code:
- every line of every ```bash block runs as written (joined at trailing backslashes), with
  ``bash -e`` in one working folder, so each step sees what the steps before it wrote;
- two size knobs are the test's, not the page's: ``bgbias train`` gets overrides that make the
  fine-tune a few steps long (``SHORT_TRAINING``), and ``bgbias serve`` runs in the background
  until its ``/health`` answers, then is stopped (it serves until Ctrl-C);
- ``BGBIAS_HOME`` points at a cache holding the U2NetP file, so ``bgbias mask-weights fetch u2netp``
  finds it verified instead of downloading it (the fixture downloads it once when missing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "own-catalogue.md"
SHORT_TRAINING = (
    "trainer.max_epochs=1 data.iterations_per_epoch=2 data.batch_size=8 data.num_workers=0"
)
PORT = 8779


def bash_commands(markdown: str) -> list[str]:
    """The commands of every ```bash block, in order (a trailing backslash joins lines)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip():
                commands.append(command.strip())
    return commands


def make_photos(root: Path, products: int = 10, views: int = 4, seed: int = 0) -> None:
    """``products`` x ``views`` photos: a product (a shape of its own colour and stripes)
    on a different random scene in every view, 96 x 80 px JPEGs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:80, :96]
    for p in range(products):
        colour = rng.integers(40, 255, size=3)
        stripe = 3 + p % 5
        for v in range(views):
            scene = rng.integers(0, 255, size=(1, 1, 3)) * np.ones((80, 96, 1))
            scene = scene + rng.normal(0, 25, (80, 96, 3))
            cy, cx = 40 + rng.integers(-8, 9), 48 + rng.integers(-10, 11)
            inside = ((yy - cy) / 22) ** 2 + ((xx - cx) / 26) ** 2 < 1
            product = colour * (0.6 + 0.4 * ((xx // stripe) % 2))[..., None]
            pixels = np.where(inside[..., None], product, scene).clip(0, 255).astype(np.uint8)
            folder = root / f"product-{p:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"view-{v}.jpg", quality=92)


def run_serve(command: str, cwd: Path, env: dict) -> None:
    server = subprocess.Popen(
        f"exec {command} --port {PORT}", shell=True, cwd=cwd, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, f"{command!r} exited with {server.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2) as r:
                    assert json.loads(r.read())
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"{command!r} did not answer /health within 120 s")
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)


@pytest.mark.slow
def test_the_own_catalogue_guide_runs_end_to_end(tmp_path, real_model):
    model_file = real_model("u2netp")
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    shutil.copy(model_file, home / "models" / model_file.name)
    env = {**os.environ, "BGBIAS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    work = tmp_path / "work"
    make_photos(work / "photos")

    commands = bash_commands(GUIDE.read_text())
    assert any(c.startswith("bgbias train folder/") for c in commands)
    for command in commands:
        if command.startswith("bgbias serve"):
            run_serve(command, work, env)
            continue
        if command.startswith("bgbias train"):
            command = f"{command} {SHORT_TRAINING}"
        done = subprocess.run(
            ["bash", "-ec", command], cwd=work, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    runs = work / "runs" / "shop" / "normalized_softmax"
    for mode in ("base", "bgaugment"):
        assert (runs / mode / "checkpoints" / "best.test.eval.json").is_file()
    assert (work / "shop" / "masks" / "masks-suspects-0of1.json").is_file()
    assert (work / "audit-shop" / "report.html").is_file()
    assert (work / "results" / "shop.md").is_file()
    assert (work / "index-shop" / "manifest.json").is_file()
