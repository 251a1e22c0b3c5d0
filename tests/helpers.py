"""Test helpers: tiny datasets written to tmp_path, so tests need no downloads."""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from bgbias.data.generate import BenchmarkConfig

REPO = Path(__file__).resolve().parents[1]  # the checkout: tests run in their own folder
# ../shared/data beside the checkout (the lead's), or beside the worktrees' folder (helpers')
SHARED = next(
    (p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)

# the benchmark the training tests train on (tests/training/conftest.py's bench)
TINY = BenchmarkConfig(
    image_size=32, train_classes=8, val_classes=3, test_classes=3, images_per_class=6, seed=5
)


def small(root, out, *extra):
    """Overrides of a fast CPU training run on ``root`` into ``out``, then ``extra``."""
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


def write_folder_dataset(
    root: Path,
    classes: dict[str, int],
    size: tuple[int, int] = (48, 40),
    splits: dict[str, list[str]] | None = None,
    masks: bool = True,
    seed: int = 0,
) -> Path:
    """images/<class>/<i>.png with a bright rectangle on a dark random background, and its mask."""
    rng = np.random.default_rng(seed)
    width, height = size
    for class_name, count in classes.items():
        for i in range(count):
            background = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
            mask = np.zeros((height, width), dtype=np.uint8)
            top, left = rng.integers(2, height // 3), rng.integers(2, width // 3)
            mask[top : top + height // 2, left : left + width // 2] = 255
            image = background.copy()
            image[mask > 0] = rng.integers(150, 255, size=3, dtype=np.uint8)
            (root / "images" / class_name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / "images" / class_name / f"{i:03d}.png")
            if masks:
                (root / "masks" / class_name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(root / "masks" / class_name / f"{i:03d}.png")
    if splits is not None:
        (root / "splits.json").write_text(json.dumps(splits))
    return root


def write_oriented_jpeg(path: Path, displayed: np.ndarray, orientation: int = 6) -> None:
    """Save ``displayed`` (H, W, 3) as a JPEG stored sideways, with the EXIF ``orientation``
    (6 or 8) that turns it back, as phone cameras do."""
    inverse = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(displayed).transpose(inverse).save(path, quality=95, exif=exif.tobytes())


def write_onnx_masker(path: Path, layers: int = 0) -> Path:
    """An ONNX model with U2Net's interface (input.1: 1x3x320x320 -> 1x1x320x320): the sigmoid of
    the channel mean, after ``layers`` 3x3 convolutions (to make it as slow as a test needs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, current = [], [], "input.1"
    rng = np.random.default_rng(0)
    for i in range(layers):
        weight = rng.normal(0, 0.1, size=(3, 3, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes.append(helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        current = f"c{i}"
    nodes.append(helper.make_node("ReduceMean", [current], ["mean"], axes=[1], keepdims=1))
    nodes.append(helper.make_node("Sigmoid", ["mean"], ["d0"]))
    graph = helper.make_graph(
        nodes,
        "masker",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("d0", TensorProto.FLOAT, [1, 1, 320, 320])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


def write_random_u2net(path: Path, name: str = "u2netp", size: int = 64, seed: int = 0):
    """A randomly initialised bgbias U2Net ``name`` and its ONNX export (input.1: 1x3xSxS ->
    1x1xSxS), made by torch's own exporter: weights that bgbias's ONNX reader must map back.
    Weights are scaled so activations neither vanish nor saturate the sigmoid."""
    import warnings

    import torch

    from bgbias.masks.u2net import U2Net, conv_layers

    generator = torch.Generator().manual_seed(seed)
    model = U2Net.named(name).eval()
    with torch.no_grad():
        for conv in conv_layers(model):
            fan_in = conv.weight[0].numel()
            conv.weight.normal_(0, 0.9 / fan_in**0.5, generator=generator)
            conv.bias.normal_(0, 0.05, generator=generator)
    with warnings.catch_warnings():  # the TorchScript exporter needs no onnxscript; it warns
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, size, size),),
            str(path),
            dynamo=False,
            opset_version=11,
            input_names=["input.1"],
        )
    return model, path


@contextlib.contextmanager
def serve_folder(folder: Path, cut_short: tuple[str, ...] = ()) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving ``folder``; yields its base URL. Files named in
    ``cut_short`` announce their full length but send only half, then close the connection
    (a download cut off mid-way)."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            name = self.path.rsplit("/", 1)[-1]
            if name in cut_short:
                body = (folder / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def write_checkpoint(
    path: Path,
    preset: str = "generated/arcface/base",
    embedding_size: int = 16,
    num_classes: int = 4,
    seed: int = 0,
    backbone: str = "small_cnn",
) -> Path:
    """A bgbias checkpoint (Lightning's layout) of an untrained model with seeded weights, as
    ``bgbias train`` writes it, without training."""
    import torch

    from bgbias import __version__
    from bgbias.config import compose, to_dict
    from bgbias.losses import build_loss
    from bgbias.models import build_model
    from bgbias.runs import CHECKPOINT_FORMAT

    config = compose(
        preset,
        [
            f"model.backbone={backbone}",
            "model.pretrained=false",
            f"model.embedding_size={embedding_size}",
            f"seed={seed}",
        ],
    )
    torch.manual_seed(seed)
    model = build_model(backbone, pretrained=False, embedding_size=embedding_size)
    loss = build_loss(config.loss.name, dict(config.loss.params), num_classes, embedding_size)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state |= {f"loss_fn.{k}": v for k, v in loss.state_dict().items()}
    hparams = {
        "config": to_dict(config),
        "num_classes": num_classes,
        "format": CHECKPOINT_FORMAT,
        "bgbias_version": __version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": hparams, "state_dict": state}, path)
    return path


def command_parsers(parser=None) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every (sub)command of ``bgbias`` by its words (``("data", "split")``; ``()`` is
    ``bgbias`` itself) and its argparse parser."""
    from bgbias.cli import build_parser

    found = {}
    pending = [((), parser or build_parser())]
    while pending:
        words, current = pending.pop()
        found[words] = current
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += [((*words, name), sub) for name, sub in action.choices.items()]
    return found


def bar_heights(ax) -> list[list[float]]:
    """The heights of each ``ax.bar`` call's bars on a matplotlib Axes, in drawing order."""
    from matplotlib.container import BarContainer

    return [[bar.get_height() for bar in c] for c in ax.containers if isinstance(c, BarContainer)]


def texts_of(fig) -> list[str]:
    """Every text a figure shows: titles, axis and tick labels, legends, free text."""
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


FAKE_SBATCH = """#!/bin/sh
# keeps each script as submitted-N.sh and answers with job 4242+N; runs nothing
dir="$(dirname "$0")"
n=$(ls "$dir" | grep -c '^submitted-.*\\.sh$')
cp "$1" "$dir/submitted-$n.sh"
echo $((4242 + n)) > "$dir/submitted-$n.id"
echo "Submitted batch job $((4242 + n))"
"""
FAKE_SRUN = """#!/bin/sh
# runs its command here, without srun's own options
while [ $# -gt 0 ]; do
  case "$1" in --output|--error) shift 2;; --*) shift;; *) break;; esac
done
exec "$@"
"""


def fake_slurm(folder: Path) -> Path:
    """`sbatch` and `srun` in ``folder`` (put it first on the PATH): sbatch keeps each script
    and answers with a job id; :func:`run_slurm_jobs` then runs them, as a cluster would."""
    import stat

    folder.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN)):
        (folder / name).write_text(text)
        (folder / name).chmod((folder / name).stat().st_mode | stat.S_IEXEC)
    return folder


def run_slurm_jobs(folder: Path, lost: tuple[int, ...] = ()) -> int:
    """Run every array task of the scripts the fake sbatch in ``folder`` kept and has not run,
    one after another, with SLURM's environment; the tasks of index ``lost`` never run (their
    node died). Returns how many tasks ran."""
    import os
    import re
    import subprocess

    ran = 0
    for script in sorted(folder.glob("submitted-*.sh")):
        done = script.with_suffix(".ran")
        if done.exists():
            continue
        job = script.with_suffix(".id").read_text().strip()
        array = re.search(r"^#SBATCH --array=(\d+)-(\d+)", script.read_text(), re.M)
        tasks = range(int(array[1]), int(array[2]) + 1) if array else [None]
        for task in tasks:
            if task in lost:
                continue
            env = dict(os.environ, SLURM_JOB_ID=job, SLURM_NTASKS="1", SLURM_JOB_NUM_NODES="1")
            env |= {"SLURM_NODEID": "0", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
            env |= {"SLURM_JOB_NODELIST": "localhost", "SUBMITIT_EXECUTOR": "slurm"}
            if task is not None:
                env |= {"SLURM_ARRAY_JOB_ID": job, "SLURM_ARRAY_TASK_ID": str(task)}
            subprocess.run(["bash", str(script)], env=env, check=False, capture_output=True)
            ran += 1
        done.write_text("")
    return ran


def register_background_set(tmp_path: Path, monkeypatch, name: str, description: str) -> list:
    """A background set ``name`` (in place of the registered ones, ``paper`` included) whose
    manifest lists a small photo copy in the paper's layout (3 val, 2 test) at
    ``tmp_path/copy``; ``$BGBIAS_HOME`` is ``tmp_path/home``. Returns the manifest entries."""
    import hashlib

    from bgbias.data import background_sets
    from bgbias.registry import Registry

    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    files = []
    rng = np.random.default_rng(0)
    for split, count in (("val", 3), ("test", 2)):
        (tmp_path / "copy" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            path = tmp_path / "copy" / split / f"photo-{split}-{i}.jpeg"
            Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(path)
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            files.append(background_sets.BackgroundFile(split, path.name, len(data), digest))

    class LocalSet(background_sets.BackgroundSet):
        def files(self):
            return files

    registry = Registry("background set")
    registry.register(name, LocalSet(name, description, "-", "{split}/{name}"))
    monkeypatch.setattr(background_sets, "BACKGROUND_SETS", registry)
    return files
