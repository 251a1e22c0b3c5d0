"""bgbias.BGAugment, the public module: what a user's own training loop relies on."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import bgbias
from bgbias.augment import BackgroundReplacer, BGAugment
from bgbias.data import background_sets
from bgbias.data.background_sets import MissingBackgroundsError
from bgbias.data.backgrounds import load_banks
from bgbias.data.transforms import RECIPES, Normalization
from bgbias.errors import ConfigError, DataError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def batch(n=8, height=40, width=56, seed=0):
    """Normalised-looking images and hard masks: a foreground box, the rest background."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, height, width, generator=g)
    masks = torch.zeros(n, 1, height, width)
    masks[:, :, height // 4 : height // 2, width // 3 : width // 2] = 1.0
    return images, masks


def solid(rgb, size=(90, 70)):
    return Image.new("RGB", size, rgb)


def write_photos(folder, count=3, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(60 + 10 * i, 80, 3), dtype=np.uint8)
        path = folder / f"photo{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_foreground_is_kept_and_background_replaced():
    images, masks = batch()
    out = BGAugment("procedural", seed=0)(images, masks)
    fg = masks.expand_as(images).bool()
    assert torch.allclose(out[fg], images[fg], atol=1e-6)
    changed = (out - images).abs().amax(dim=1)[~masks[:, 0].bool()]
    assert (changed > 1e-3).float().mean() > 0.99


def test_background_is_the_photo_normalised_with_mean_and_std_and_masks_blend_softly():
    images, _ = batch(n=3)
    masks = torch.full((3, 1, 40, 56), 0.25)
    colour = (200, 10, 50)
    out = BGAugment([solid(colour)], seed=0)(images, masks)
    bg = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255 - IMAGENET_MEAN
    bg = bg / IMAGENET_STD
    assert torch.allclose(out, 0.25 * images + 0.75 * bg, atol=1e-5)

    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    out = BGAugment([solid(colour)], mean=mean, std=std, seed=0)(images, torch.zeros_like(masks))
    expected = (torch.tensor(colour, dtype=torch.float32) / 255 - 0.5) / 0.25
    assert torch.allclose(out, expected.view(1, 3, 1, 1).expand_as(out), atol=1e-5)


def test_caffe_style_bgr_normalization():
    caffe = Normalization("BGR", (104.0, 117.0, 128.0), (1.0, 1.0, 1.0))
    images, masks = batch(n=2)
    out = BGAugment([solid((200, 10, 50))], normalization=caffe, seed=0)(images, masks * 0)
    assert torch.allclose(out[:, :, 0, 0], torch.tensor([[50.0 - 104, 10 - 117, 200 - 128]] * 2))
    with pytest.raises(ConfigError, match="mean/std or normalization"):
        BGAugment("procedural", mean=(0.5, 0.5, 0.5), normalization=caffe)


def test_same_seed_same_batch_and_another_seed_another():
    images, masks = batch()
    a = BGAugment("procedural", seed=3)(images, masks)
    b = BGAugment("procedural", seed=3)(images, masks)
    c = BGAugment("procedural", seed=4)(images, masks)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_successive_batches_get_fresh_backgrounds_and_a_generator_overrides_the_seed():
    images, masks = batch()
    augment = BGAugment("procedural", seed=3)
    assert not torch.equal(augment(images, masks), augment(images, masks))
    first = augment(images, masks, generator=torch.Generator().manual_seed(9))
    other = BGAugment("procedural", seed=5)(images, masks, torch.Generator().manual_seed(9))
    assert torch.equal(first, other)


def test_p_zero_is_the_identity():
    images, masks = batch()
    assert torch.equal(BGAugment("procedural", p=0.0, seed=0)(images, masks), images)


def test_p_half_replaces_about_half_of_the_images_each_whole_or_not_at_all():
    images, masks = batch(n=400, height=16, width=16)
    out = BGAugment("procedural", p=0.5, seed=0)(images, masks)
    diff = (out - images).abs()
    background_changed = ((diff.amax(dim=1) > 1e-3) & ~masks[:, 0].bool()).flatten(1).any(1)
    untouched = diff.flatten(1).amax(dim=1) == 0
    assert torch.equal(background_changed, ~untouched)  # all or nothing, per image
    assert 0.4 < background_changed.float().mean() < 0.6
    with pytest.raises(ConfigError, match="p must be in"):
        BGAugment("procedural", p=1.5)


def test_non_square_batches_of_different_sizes():
    augment = BGAugment("procedural", seed=0)
    for height, width in ((40, 96), (72, 24)):
        images, masks = batch(n=4, height=height, width=width)
        out = augment(images, masks)
        assert out.shape == (4, 3, height, width)
        assert not torch.equal(out, images)
        bank = augment.replacer(height, width).bank
        assert bank.sizes.min().item() == int(np.ceil(max(height, width) * 256 / 224))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_output_keeps_the_input_dtype_and_gradients_reach_the_foreground(dtype):
    images, masks = batch(n=2)
    images = images.to(dtype).requires_grad_()
    out = BGAugment("procedural", seed=0)(images, masks)
    assert out.dtype == dtype and out.device == images.device
    out.sum().backward()
    assert torch.equal(images.grad, masks.expand_as(images).to(dtype))


def test_no_grad_and_autocast():
    images, masks = batch(n=2)
    augment = BGAugment("procedural", seed=0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = augment(images.bfloat16(), masks)
    assert out.dtype == torch.bfloat16 and not out.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_output_on_the_input_s_gpu_matches_the_cpu():
    images, masks = batch()
    cpu = BGAugment("procedural", seed=1)(images, masks)
    gpu = BGAugment("procedural", seed=1)(images.cuda(), masks.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


def test_a_list_of_pil_images_or_paths_and_a_folder(tmp_path):
    paths = write_photos(tmp_path / "photos")
    images, masks = batch(n=4)
    from_paths = BGAugment(paths, seed=0)(images, masks)
    from_strings = BGAugment([str(p) for p in paths], seed=0)(images, masks)
    from_pil = BGAugment([Image.open(p) for p in paths], seed=0)(images, masks)
    from_folder = BGAugment(tmp_path / "photos", seed=0)(images, masks)
    # PIL images are used as given, lossless files as decoded; folders list photos sorted
    assert torch.equal(from_paths, from_strings) and torch.equal(from_paths, from_folder)
    assert not torch.equal(from_paths, images)
    lossless = [p for p in paths if p.suffix == ".png"]
    assert torch.allclose(
        BGAugment([Image.open(p) for p in lossless], seed=0)(images, masks),
        BGAugment(lossless, seed=0)(images, masks),
        atol=1e-6,
    )
    assert from_pil.shape == images.shape and not torch.equal(from_pil, images)


def test_the_paper_set_and_folders_laid_out_like_it_train_on_their_val_photos(
    tmp_path, monkeypatch
):
    write_photos(tmp_path / "sets" / "val", count=2, seed=0)
    write_photos(tmp_path / "sets" / "test", count=3, seed=1)
    augment = BGAugment(tmp_path / "sets", short_side=48, seed=0)
    assert augment.replacer(40, 40).bank.names == ["photo0.jpg", "photo1.png"]
    assert augment.replacer(40, 40).bank.source == str(tmp_path / "sets" / "val")
    # "paper", once fetched, is such a folder in the user cache
    monkeypatch.setattr(background_sets, "installed_folder", lambda name: tmp_path / "sets")
    paper = BGAugment("paper", short_side=48, seed=0)
    assert paper.replacer(40, 40).bank.source == str(tmp_path / "sets" / "val")
    assert "paper" in repr(paper)


def test_bad_sources_fail_at_construction_naming_them(tmp_path, monkeypatch):
    with pytest.raises(
        DataError, match=re.escape(f"{tmp_path / 'nowhere'}: background folder not found")
    ):
        BGAugment(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataError, match=re.escape(f"{tmp_path / 'empty'}: background folder has no images")
    ):
        BGAugment(tmp_path / "empty")
    with pytest.raises(DataError, match="list of images is empty"):
        BGAugment([])
    with pytest.raises(DataError, match="gone.jpg: background image not found"):
        BGAugment([tmp_path / "gone.jpg"])
    with pytest.raises(ConfigError, match="not of int"):
        BGAugment([1, 2])
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        BGAugment([tmp_path / "broken.jpg"], short_side=32)  # a short side decodes at once
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    with pytest.raises(MissingBackgroundsError, match="bgbias backgrounds fetch paper"):
        BGAugment("paper")


def test_mismatched_masks_are_rejected():
    images, masks = batch(height=40, width=56)
    with pytest.raises(ValueError, match=r"masks must be \(8, 1, 40, 56\)"):
        BGAugment("procedural")(images, masks[:, :, :, :50])


def test_repr_names_the_source_and_p():
    text = repr(BGAugment("procedural", p=0.5, seed=2))
    assert text == "BGAugment(backgrounds='procedural', p=0.5, seed=2)"


def test_from_bank_makes_exactly_the_training_replacer_s_draws():
    # the preset training composites through BGAugment.from_bank: the same (seed, epoch, rank)
    # generator must give the same batch as BackgroundReplacer did
    recipe = RECIPES.get("generated")
    bank = load_banks(None, short_side=64, count=8)["val"]
    images, masks = batch(n=6, height=64, width=64)
    augment = BGAugment.from_bank(bank, recipe)
    new = augment(images, masks, torch.Generator().manual_seed(11))
    old = BackgroundReplacer(bank, recipe)(images, masks, torch.Generator().manual_seed(11))
    assert torch.equal(new, old)
    assert augment.replacer(64, 64).bank is bank and augment.replacer(32, 48).bank is bank


def test_bgbias_bgaugment_imports_no_lightning_onnxruntime_or_fastapi():
    code = (
        "import json, sys, bgbias; bgbias.BGAugment; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", code], text=True)))
    assert "torch" in loaded
    assert not loaded & {"lightning", "pytorch_lightning", "onnxruntime", "fastapi"}
    assert bgbias.BGAugment is BGAugment
