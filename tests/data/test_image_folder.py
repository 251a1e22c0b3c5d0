"""MaskedImageFolder and paper_transforms: what users of the Python API rely on."""

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_metric_learning.samplers import MPerClassSampler
from torch.utils.data import DataLoader

import bgbias
from bgbias.data.transforms import RECIPES
from bgbias.errors import ConfigError, DataError, DataProblems, MissingMasksError
from tests.helpers import write_folder_dataset


@pytest.fixture
def tree(tmp_path):
    """A plain class tree ROOT/<class>/<image> (96x80 images: a bright object, off centre, on a
    dark background) and its masks in a mirrored folder."""
    root = write_folder_dataset(tmp_path / "ds", {"cat": 3, "dog": 2}, size=(96, 80))
    return root / "images", root / "masks"


def object_of(image: torch.Tensor, transform) -> torch.Tensor:
    """(H, W) bool: where the transformed image shows the bright object (on [0, 1] RGB the
    background is below 80/255, the object above 150/255)."""
    rgb = transform.recipe.normalization.inverse(image)
    return rgb.mean(dim=0) > 115 / 255


def test_masks_stay_on_the_object_under_random_crops_and_flips(tree):
    images, masks = tree
    train, _ = bgbias.paper_transforms("imagenet", size=64)
    ds = bgbias.MaskedImageFolder(images, masks=masks, transform=train)
    flips_seen, agreements, against_flipped = 0, [], []
    for seed in range(60):
        index = seed % len(ds)
        x, m, _ = ds[index, seed]
        assert x.shape == (3, 64, 64) and m.shape == (1, 64, 64)
        seen = object_of(x, train)
        mask = m[0] > 0.5
        agreements.append((seen == mask).float().mean().item())
        # the same mask mirrored: what an image flipped without its mask would be scored against
        against_flipped.append((seen == mask.flip(-1)).float().mean().item())
        flips_seen += int(against_flipped[-1] < 0.97)
    assert min(agreements) > 0.97  # only the resampled object edge may differ
    assert flips_seen > 10  # the check can tell a misaligned mask from an aligned one


def test_without_transform_items_are_pil_image_and_mask(tree):
    images, masks = tree
    ds = bgbias.MaskedImageFolder(images, masks=masks)
    image, mask, label = ds[4]
    assert image.mode == "RGB" and mask.mode == "L" and image.size == mask.size == (96, 80)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert list(ds.labels) == [0, 0, 0, 1, 1] and label == 1
    expected = np.asarray(Image.open(masks / "dog" / "001.png"))
    assert np.array_equal(np.asarray(mask), expected)


def test_works_with_m_per_class_sampler_and_default_collate(folder_dataset):
    train, _ = bgbias.paper_transforms("generated")
    ds = bgbias.MaskedImageFolder(folder_dataset, split="train", transform=train)
    assert len(ds) == 8 and ds.classes == ["c0", "c1"]
    sampler = MPerClassSampler(ds.labels, m=2, length_before_new_iter=8)
    loader = DataLoader(ds, batch_size=4, sampler=sampler)
    batches = list(loader)
    assert len(batches) == 2
    for x, m, labels in batches:
        assert x.shape == (4, 3, 64, 64) and m.shape == (4, 1, 64, 64)
        assert labels.dtype == torch.int64 and sorted(labels.tolist()) == [0, 0, 1, 1]


def test_bgbias_folder_splits_and_every_class(folder_dataset):
    test = bgbias.MaskedImageFolder(folder_dataset, split="test")
    assert test.classes == ["c4", "c5"] and len(test) == 8
    assert len(bgbias.MaskedImageFolder(folder_dataset)) == 24  # split="all"
    with pytest.raises(DataError, match="no split 'holdout'"):
        bgbias.MaskedImageFolder(folder_dataset, split="holdout")


def test_missing_masks_name_the_folder_and_the_fix(folder_dataset, tree):
    images, _ = tree
    with pytest.raises(MissingMasksError) as plain:
        bgbias.MaskedImageFolder(images)
    with pytest.raises(MissingMasksError) as missing_dir:
        bgbias.MaskedImageFolder(images, masks=images.parent / "nowhere")
    (folder_dataset / "masks" / "c1" / "002.png").unlink()
    with pytest.raises(MissingMasksError) as one_missing:
        bgbias.MaskedImageFolder(folder_dataset, split="train")
    for error in (plain, missing_dir, one_missing):
        message = str(error.value)
        assert "\n" not in message and "masks=False" in message
        assert "bgbias masks" in message and "predict_masks" in message
    assert "masks=DIR" in str(plain.value)
    assert str(images.parent / "nowhere") in str(missing_dir.value)
    assert "1 of 8 images have no mask" in str(one_missing.value)
    assert "c1/002.png" in str(one_missing.value)


def test_masks_false_gives_all_ones_masks(folder_dataset, tree):
    images, _ = tree
    ds = bgbias.MaskedImageFolder(images, masks=False)
    image, mask, _ = ds[0]
    assert mask.size == image.size and np.asarray(mask).min() == 255
    _, evaluate = bgbias.paper_transforms("generated")
    (folder_dataset / "masks" / "c1" / "002.png").unlink()
    x, m, _ = bgbias.MaskedImageFolder(folder_dataset, masks=False, transform=evaluate)[0]
    assert x.shape == (3, 64, 64) and torch.equal(m, torch.ones(1, 64, 64))


def test_a_mask_of_another_size_is_found_when_opening(tree):
    images, masks = tree
    Image.new("L", (10, 10)).save(masks / "cat" / "001.png")
    with pytest.raises(DataProblems, match=r"cat/001\.png: mask is 10x10 but its image is 96x80"):
        bgbias.MaskedImageFolder(images, masks=masks)
    with pytest.raises(DataError, match="split='train' needs a bgbias dataset folder"):
        bgbias.MaskedImageFolder(images, masks=masks, split="train")
    with pytest.raises(ConfigError, match="verify='some'"):
        bgbias.MaskedImageFolder(images, masks=masks, verify="some")


def test_paper_transforms_follow_the_recipe_and_overrides():
    train, evaluate = bgbias.paper_transforms("bninception")
    assert train.train and not evaluate.train and train.recipe == RECIPES.get("bninception")
    image = Image.new("RGB", (300, 260), (255, 0, 0))
    x, m = evaluate(image, None)
    assert x.shape == (3, 227, 227) and torch.equal(m, torch.ones(1, 227, 227))
    assert x[:, 0, 0].tolist() == [-104.0, -117.0, 255.0 - 128.0]  # Caffe: BGR, 0-255 means

    train, evaluate = bgbias.paper_transforms("imagenet", size=112, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert (evaluate.recipe.crop, evaluate.recipe.resize) == (112, 128)
    x, _ = evaluate(image, None)
    assert x.shape == (3, 112, 112) and x[:, 5, 5].tolist() == [1.0, -1.0, -1.0]
    bgr = bgbias.paper_transforms("bninception", mean=(0.1, 0.2, 0.4))[1].recipe.normalization
    assert bgr.mean == pytest.approx((102.0, 51.0, 25.5)) and bgr.std == (1.0, 1.0, 1.0)
    with pytest.raises(ConfigError, match="unknown transform recipe 'nope'"):
        bgbias.paper_transforms("nope")
    with pytest.raises(ConfigError, match="std > 0"):
        bgbias.paper_transforms(std=(0.5, 0.0, 0.5))
