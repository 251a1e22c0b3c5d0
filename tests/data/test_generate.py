import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from bgbias.data.datasets import FolderDataset
from bgbias.data.generate import BenchmarkConfig, benchmark_matches, generate_benchmark, tree_digest
from bgbias.errors import ConfigError, DataError

SMALL = BenchmarkConfig(
    image_size=32, train_classes=4, val_classes=2, test_classes=3, images_per_class=5, seed=3
)


def test_generation_is_byte_for_byte_reproducible(tmp_path):
    generate_benchmark(tmp_path / "a", SMALL)
    generate_benchmark(tmp_path / "b", SMALL)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    other = BenchmarkConfig(**{**SMALL.__dict__, "seed": 4})
    generate_benchmark(tmp_path / "c", other)
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")


def test_benchmark_is_a_folder_dataset_with_disjoint_splits(tmp_path):
    manifest = generate_benchmark(tmp_path / "g", SMALL)
    assert manifest["splits"] == {"train": 4, "val": 2, "test": 3}
    splits = json.loads((tmp_path / "g" / "splits.json").read_text())
    assert set(splits["train"]).isdisjoint(splits["test"]) and set(splits["val"]).isdisjoint(
        splits["test"]
    )
    for split, n in manifest["splits"].items():
        ds = FolderDataset.open(tmp_path / "g", split, require_masks=True, verify="full")
        assert ds.num_classes == n and len(ds) == n * SMALL.images_per_class
        image, mask = ds.load(0)
        assert image.size == mask.size == (32, 32)
    assert benchmark_matches(tmp_path / "g", SMALL)
    assert not benchmark_matches(tmp_path / "g", BenchmarkConfig(seed=99))


def test_masks_are_exact_object_silhouettes(tmp_path):
    generate_benchmark(tmp_path / "g", SMALL)
    ds = FolderDataset.open(tmp_path / "g", "train", require_masks=True)
    for i in range(len(ds)):
        _, mask = ds.load(i)
        m = np.asarray(mask)
        assert (m == 255).mean() > 0.05  # a sizeable object
        assert (m == 0).mean() > 0.3  # and a visible background


def _background_colour(root, class_name, k):
    image = np.asarray(Image.open(root / "images" / class_name / f"{k:04d}.png"), dtype=float)
    mask = np.asarray(Image.open(root / "masks" / class_name / f"{k:04d}.png")) == 0
    return image[mask].mean(axis=0)


def test_home_scene_is_a_per_class_shortcut(tmp_path):
    config = BenchmarkConfig(
        image_size=32,
        train_classes=6,
        val_classes=1,
        test_classes=1,
        images_per_class=6,
        home_probability=1.0,
        seed=1,
    )
    generate_benchmark(tmp_path / "g", config)
    root = tmp_path / "g"
    classes = json.loads((root / "splits.json").read_text())["train"]
    colours = np.array([[_background_colour(root, c, k) for k in range(6)] for c in classes])
    within = np.mean(
        [
            np.linalg.norm(colours[i] - colours[i].mean(0), axis=1).mean()
            for i in range(len(classes))
        ]
    )
    between = np.linalg.norm(colours.mean(1)[:, None] - colours.mean(1)[None], axis=2)
    assert within < np.median(between[np.triu_indices(len(classes), 1)]) / 2


def test_refuses_to_overwrite_without_permission(tmp_path):
    from bgbias.errors import OutputError

    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "keep.txt").write_text("user data")
    for overwrite in (False, True):  # --overwrite replaces a benchmark, never a user's folder
        with pytest.raises(OutputError, match="g: holds files bgbias did not write"):
            generate_benchmark(tmp_path / "g", SMALL, overwrite=overwrite)
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["keep.txt"]
    generate_benchmark(tmp_path / "b", SMALL)
    (tmp_path / "b" / "NOTES.md").write_text("what I changed")
    with pytest.raises(DataError, match="not empty"):
        generate_benchmark(tmp_path / "b", SMALL)
    generate_benchmark(tmp_path / "b", SMALL, overwrite=True)
    assert (tmp_path / "b" / "NOTES.md").read_text() == "what I changed"  # carried over
    # no temporary or replaced folder left behind, only the (hidden) lock files
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.lock", "b", "g"]


def test_invalid_configs_are_rejected():
    with pytest.raises(ConfigError, match="images_per_class"):
        BenchmarkConfig(images_per_class=1)
    with pytest.raises(ConfigError, match="home_probability"):
        BenchmarkConfig(home_probability=1.5)


def test_a_second_generate_into_one_folder_is_refused(tmp_path):
    from filelock import FileLock

    from bgbias.errors import OutputError

    with FileLock(str(tmp_path / ".g.lock")), pytest.raises(OutputError, match="another"):
        generate_benchmark(tmp_path / "g", SMALL)
    assert not (tmp_path / "g").exists()


def written_so_far(parent, name):
    """The PNGs an unfinished run of ``generate_benchmark(parent / name)`` has written: its
    temporary ``.NAME.partial-*`` folder is the marker of a run under way."""
    return [png for folder in parent.glob(f".{name}.partial-*") for png in folder.rglob("*.png")]


def test_killed_overwrite_keeps_the_old_benchmark_and_a_rerun_gives_the_uninterrupted_one(
    tmp_path,
):
    out = tmp_path / "g"
    generate_benchmark(out, SMALL)
    old = tree_digest(out)
    new = BenchmarkConfig(**{**SMALL.__dict__, "image_size": 48, "images_per_class": 20, "seed": 9})
    command = [sys.executable, "-m", "bgbias", "data", "generate", str(out), "--overwrite"]
    command += ["--image-size", "48", "--images-per-class", "20", "--seed", "9"]
    command += ["--train-classes", "4", "--val-classes", "2", "--test-classes", "3"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120  # a cold start of torch-free bgbias on a busy machine
    while not written_so_far(tmp_path, "g") and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.01)
    running = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    # the kill landed mid-run: files of the new benchmark written, but not all of them
    assert running, f"the run ended (exit {process.returncode}) before it wrote anything"
    (partial,) = tmp_path.glob(".g.partial-*")
    written = len(written_so_far(tmp_path, "g"))
    assert 0 < written < 2 * 9 * 20 and not (partial / "benchmark.json").exists()
    # the old benchmark is whole and untouched
    assert tree_digest(out) == old
    manifest = json.loads((out / "benchmark.json").read_text())
    assert manifest["config"]["seed"] == 3
    assert len(FolderDataset.open(out, "all")) == manifest["images"]
    # running the command again gives exactly what an uninterrupted run gives
    generate_benchmark(out, new, overwrite=True)
    generate_benchmark(tmp_path / "uninterrupted", new)
    assert tree_digest(out) == tree_digest(tmp_path / "uninterrupted") != old
    assert json.loads((out / "benchmark.json").read_text())["config"]["seed"] == 9
    # what the kill left is gone: only the two benchmarks and their (hidden) lock files
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".g.lock",
        ".uninterrupted.lock",
        "g",
        "uninterrupted",
    ]
