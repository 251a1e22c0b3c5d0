import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from bgbias.cli import main
from bgbias.errors import BgbiasError
from bgbias.masks.generate import generate_masks, parse_shard
from bgbias.masks.predictors import MaskPredictor, OnnxU2NetPredictor
from tests.helpers import write_onnx_masker


def mask_files(folder):
    """The masks under ``folder``: its PNGs less the job's own masks-suspects-KofN.png."""
    return [p for p in folder.rglob("*.png") if not p.name.startswith("masks-suspects-")]


def make_images(folder, count=6, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(count):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        Image.fromarray(rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)).save(
            sub / f"img{i}.jpg"
        )
    return folder


@pytest.fixture
def predictor(tmp_path):
    return OnnxU2NetPredictor(write_onnx_masker(tmp_path / "masker.onnx"))


def test_one_png_per_image_same_size_mirrored_path(tmp_path, predictor):
    images = make_images(tmp_path / "images")
    report = generate_masks(images, tmp_path / "masks", predictor=predictor, progress=False)
    assert (report.images, report.written, report.already_done, report.failed) == (6, 6, 0, [])
    for image in images.rglob("*.jpg"):
        mask = Image.open(tmp_path / "masks" / image.relative_to(images).with_suffix(".png"))
        assert mask.mode == "L" and mask.size == Image.open(image).size
    assert not list((tmp_path / "masks").rglob("*.tmp"))
    saved = json.loads((tmp_path / "masks" / "masks-report-0of1.json").read_text())
    assert saved["written"] == 6


def test_follows_rembg_pre_and_post_processing(tmp_path, predictor):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 200, (70, 50, 3), dtype=np.uint8))
    x = predictor.preprocess(image)
    resized = np.array(image.resize((320, 320), Image.Resampling.LANCZOS))
    expected = (resized / resized.max() - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert x.shape == (3, 320, 320) and x.dtype == np.float32
    assert np.allclose(x, expected.transpose(2, 0, 1), atol=1e-6)
    raw = np.linspace(2.0, 4.0, 320 * 320).reshape(320, 320).astype(np.float32)
    mask = predictor.postprocess(raw, (50, 70))
    direct = Image.fromarray(((raw - 2.0) / 2.0 * 255).astype("uint8"), "L").resize(
        (50, 70), Image.Resampling.LANCZOS
    )
    assert np.array_equal(np.asarray(mask), np.asarray(direct))


def test_resume_skips_finished_masks(tmp_path, predictor):
    images = make_images(tmp_path / "images")
    generate_masks(images, tmp_path / "masks", predictor=predictor, shard=(0, 2), progress=False)
    first = {p: p.stat().st_mtime_ns for p in mask_files(tmp_path / "masks")}
    assert len(first) == 3
    report = generate_masks(images, tmp_path / "masks", predictor=predictor, progress=False)
    assert (report.already_done, report.written) == (3, 3)
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())


def test_shards_partition_the_images(tmp_path, predictor):
    images = make_images(tmp_path / "images", count=7)
    for k in range(3):
        generate_masks(
            images, tmp_path / "masks", predictor=predictor, shard=(k, 3), progress=False
        )
    assert len(list(mask_files(tmp_path / "masks"))) == 7
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(BgbiasError, match="--shard"):
            parse_shard(bad)


def test_corrupt_image_is_reported_not_fatal_and_listed_in_a_file(tmp_path, predictor):
    images = make_images(tmp_path / "images")
    (images / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    report = generate_masks(images, tmp_path / "masks", predictor=predictor, progress=False)
    assert report.written == 6 and len(report.failed) == 1 and not report.ok
    assert "broken.jpg: corrupt or truncated image" in report.failed[0]["error"]
    listed = json.loads((tmp_path / "masks" / "masks-failures-0of1.json").read_text())
    assert report.failures_file == str(tmp_path / "masks" / "masks-failures-0of1.json")
    assert listed["failed"] == [{"image": "a/broken.jpg", "error": report.failed[0]["error"]}]
    summary = json.loads((tmp_path / "masks" / "masks-report-0of1.json").read_text())
    assert summary["failed"] == 1 and summary["failures_file"] == report.failures_file
    (images / "a" / "broken.jpg").unlink()  # fixed: the next run has nothing to list
    report = generate_masks(images, tmp_path / "masks", predictor=predictor, progress=False)
    assert report.ok and report.failures_file is None
    assert not (tmp_path / "masks" / "masks-failures-0of1.json").exists()


def test_leftover_temporaries_of_this_shard_are_removed(tmp_path, predictor):
    images = make_images(tmp_path / "images", count=4)  # shard 0/2: a/img1, b/img0
    masks = tmp_path / "masks"
    (masks / "a").mkdir(parents=True)
    (masks / "b").mkdir()
    own = [masks / "b" / ".img0.png.k2x9_a1q.tmp", masks / ".masks-report-0of2.json.abc.tmp"]
    foreign = [masks / "a" / ".img3.png.zz81ab3c.tmp", masks / "b" / "notes.tmp"]
    for path in own + foreign:
        path.write_bytes(b"half a file")
    report = generate_masks(images, masks, predictor=predictor, shard=(0, 2), progress=False)
    assert report.stale_temporaries_removed == 2 and report.written == 2
    assert not any(p.exists() for p in own)
    assert all(p.exists() for p in foreign)  # shard 1 may be writing those right now


def test_batched_inference_gives_the_same_masks(tmp_path):
    pytest.importorskip("onnx")
    model = write_onnx_masker(tmp_path / "masker.onnx", layers=2)
    images = make_images(tmp_path / "images")
    generate_masks(images, tmp_path / "one", predictor=OnnxU2NetPredictor(model), progress=False)
    generate_masks(
        images, tmp_path / "four", predictor=OnnxU2NetPredictor(model, batch_size=4), progress=False
    )
    for mask in mask_files(tmp_path / "one"):
        twin = tmp_path / "four" / mask.relative_to(tmp_path / "one")
        assert np.array_equal(np.asarray(Image.open(mask)), np.asarray(Image.open(twin)))


@pytest.mark.slow
def test_killed_job_resumes_with_every_mask_valid(tmp_path, monkeypatch):
    model = write_onnx_masker(tmp_path / "slow.onnx", layers=40)
    images = make_images(tmp_path / "images", count=60)
    env = dict(os.environ, BGBIAS_TEST_MASK_MODEL=str(model))
    script = (
        "import os, sys; from bgbias.masks.generate import generate_masks; "
        "from bgbias.masks.predictors import OnnxU2NetPredictor; "
        "generate_masks(sys.argv[1], sys.argv[2], predictor=OnnxU2NetPredictor("
        "os.environ['BGBIAS_TEST_MASK_MODEL'], threads=1), progress=False)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(images), str(tmp_path / "masks")], env=env
    )
    deadline = time.time() + 120
    while len(list(mask_files(tmp_path / "masks"))) < 5 and time.time() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    done = {p: p.stat().st_mtime_ns for p in mask_files(tmp_path / "masks")}
    assert 5 <= len(done) < 60
    for path in done:  # every mask left behind is a complete PNG
        Image.open(path).load()
    report = generate_masks(
        images, tmp_path / "masks", predictor=OnnxU2NetPredictor(model), progress=False
    )
    assert report.already_done == len(done) and report.written == 60 - len(done)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # none recomputed


def test_cli_reports_failures_with_exit_code(tmp_path, monkeypatch, capsys):
    import bgbias.masks.predictors as predictors

    model = write_onnx_masker(tmp_path / "masker.onnx")
    monkeypatch.setattr(predictors, "PREDICTORS", predictors.Registry("mask model"))
    predictors.PREDICTORS.register("u2net", lambda *options: OnnxU2NetPredictor(model))
    images = make_images(tmp_path / "images", count=2)
    (images / "bad.png").write_bytes(b"nope")
    assert main(["masks", str(images), str(tmp_path / "masks"), "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "2 mask(s) written" in out and "bad.png" in out


def write_photo(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def test_suspect_masks_are_listed_drawn_and_kept_across_reruns(tmp_path, predictor):
    images, masks = tmp_path / "images", tmp_path / "masks"
    good = np.full((60, 80, 3), 20)
    good[20:40, 25:55] = 230  # a bright product in the middle: the masker finds it
    scene = np.full((60, 80, 3), 230)
    scene[15:45, 20:60] = 20  # bright all round a dark product: the mask takes the scene
    speckled = np.full((60, 80, 3), 20)
    for i in range(6):
        speckled[4 + 9 * i : 8 + 9 * i, 4 + 12 * i : 10 + 12 * i] = 230
    for name, pixels in {"a/good": good, "a/scene": scene, "b/speckled": speckled}.items():
        write_photo(images / f"{name}.png", pixels)

    report = generate_masks(images, masks, predictor=predictor, progress=False)
    flagged = {
        image: [p.split(":")[0] for p in problems] for image, problems in report.suspects.items()
    }
    assert flagged == {"a/scene.png": ["border"], "b/speckled.png": ["fragmented"]}
    listing = json.loads((masks / "masks-suspects-0of1.json").read_text())
    assert [m["image"] for m in listing["masks"]] == ["a/scene.png", "b/speckled.png"]
    assert Image.open(masks / "masks-suspects-0of1.png").height >= 2 * 160
    assert json.loads((masks / "masks-report-0of1.json").read_text())["suspects"] == 2

    again = generate_masks(images, masks, predictor=predictor, progress=False)
    assert again.written == 0 and again.suspects == report.suspects  # the earlier list, kept
    (masks / "masks-suspects-0of1.json").unlink()
    checked = generate_masks(images, masks, predictor=predictor, progress=False)
    assert checked.suspects == report.suspects  # no list: the kept masks are checked again


class LeftThirdMasker(MaskPredictor):
    """A mask model that always answers "the left third": unstable under a horizontal flip."""

    batch_size = 4

    def __init__(self):
        self.calls = []

    def preprocess(self, image):
        return np.asarray(image)

    def predict(self, inputs):
        self.calls.append(len(inputs))
        return [np.arange(x.shape[1])[None, :] < x.shape[1] // 3 for x in inputs]

    def postprocess(self, output, size):
        mask = np.broadcast_to(output, (size[1], size[0])).astype(np.uint8) * 255
        return Image.fromarray(mask)


def test_flip_check_flags_masks_the_mirrored_photo_disagrees_with(tmp_path):
    images = tmp_path / "images"
    write_photo(images / "a" / "one.png", np.full((30, 60, 3), 100))
    masker = LeftThirdMasker()
    plain = generate_masks(images, tmp_path / "m1", predictor=masker, progress=False)
    assert "flip" not in str(plain.suspects) and masker.calls == [1]
    report = generate_masks(
        images, tmp_path / "m2", predictor=masker, progress=False, flip_check=True
    )
    assert masker.calls[-1] == 2  # the photo and its mirror image, in one model call
    (problem,) = [p for p in report.suspects["a/one.png"] if p.startswith("flip")]
    assert problem == "flip: IoU 0.00 with the mirrored photo's mask"
