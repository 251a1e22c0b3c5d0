import json

import numpy as np
import pytest
import torch
from PIL import Image

from bgbias.data.check import check_dataset
from bgbias.data.datasets import FolderDataset
from bgbias.data.layout import write_class_split
from bgbias.data.transforms import RECIPES, PairedTransform
from bgbias.errors import DataError, DataProblems
from tests.helpers import write_folder_dataset, write_oriented_jpeg


def test_items_are_image_mask_label(folder_dataset):
    transform = PairedTransform(RECIPES.get("generated"), train=True)
    ds = FolderDataset.open(folder_dataset, "train", transform, require_masks=True)
    assert len(ds) == 8 and ds.num_classes == 2 and ds.classes == ["c0", "c1"]
    x, m, label = ds[5]
    assert x.shape == (3, 64, 64) and m.shape == (1, 64, 64) and label == 1
    assert 0 <= m.min() <= m.max() <= 1 and m.max() == 1.0


def test_labels_follow_the_split_file_order(folder_dataset):
    (folder_dataset / "splits.json").write_text(
        json.dumps({"train": ["c1", "c0"], "val": ["c2", "c3"], "test": ["c4", "c5"]})
    )
    ds = FolderDataset.open(folder_dataset, "train")
    assert ds.classes == ["c1", "c0"]
    assert [s.class_name for s in ds.samples if s.label == 0] == ["c1"] * 4


def test_index_csv_layout(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"x": 3, "y": 2})
    rows = (
        ["path,label"]
        + [f"x/{i:03d}.png,10" for i in range(3)]
        + [f"y/{i:03d}.png,20" for i in range(2)]
    )
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    (root / "splits.json").write_text(json.dumps({"test": ["20", "10"]}))
    ds = FolderDataset.open(root, "test", require_masks=True)
    assert ds.classes == ["20", "10"] and list(ds.labels) == [1, 1, 1, 0, 0]
    assert ds.has_masks


def test_missing_mask_is_named(folder_dataset):
    (folder_dataset / "masks" / "c0" / "002.png").unlink()
    with pytest.raises(
        DataProblems, match=r"c0/002\.png: mask missing \(expected .*masks/c0/002\.png\)"
    ):
        FolderDataset.open(folder_dataset, "train")


def test_mask_of_other_size_is_named(folder_dataset):
    Image.new("L", (10, 10)).save(folder_dataset / "masks" / "c1" / "001.png")
    with pytest.raises(
        DataProblems, match=r"masks/c1/001\.png: mask is 10x10 but its image is 48x40"
    ):
        FolderDataset.open(folder_dataset, "train")


def test_truncated_image_is_found_by_full_verification(folder_dataset):
    path = folder_dataset / "images" / "c4" / "000.png"
    path.write_bytes(path.read_bytes()[:-200])
    FolderDataset.open(folder_dataset, "test", verify="header")  # the header is intact
    with pytest.raises(DataProblems, match=r"c4/000\.png: corrupt or truncated image"):
        FolderDataset.open(folder_dataset, "test", verify="full")
    ds = FolderDataset.open(
        folder_dataset, "test", PairedTransform(RECIPES.get("generated"), False)
    )
    with pytest.raises(DataError, match=r"c4/000\.png: corrupt or truncated image"):
        ds[0]


def test_empty_class_folder(folder_dataset):
    (folder_dataset / "images" / "c9").mkdir()
    with pytest.raises(DataProblems, match=r"images/c9: empty class"):
        FolderDataset.open(folder_dataset, "train")


def test_class_shared_between_splits(folder_dataset):
    (folder_dataset / "splits.json").write_text(
        json.dumps({"train": ["c0", "c1"], "val": ["c2"], "test": ["c1", "c5"]})
    )
    with pytest.raises(DataProblems, match=r"class 'c1' is in both 'train' and 'test'"):
        FolderDataset.open(folder_dataset, "test")


def test_missing_masks_folder_when_masks_are_required(folder_dataset):
    import shutil

    shutil.rmtree(folder_dataset / "masks")
    ds = FolderDataset.open(folder_dataset, "train")  # fine without BGAugment
    assert not ds.has_masks
    with pytest.raises(DataError, match=r"bgbias masks .*/images .*/masks"):
        FolderDataset.open(folder_dataset, "train", require_masks=True)


def test_unknown_split_and_missing_split_file(folder_dataset):
    with pytest.raises(DataError, match="no split 'dev'"):
        FolderDataset.open(folder_dataset, "dev")
    (folder_dataset / "splits.json").unlink()
    with pytest.raises(DataError, match="no splits.json"):
        FolderDataset.open(folder_dataset, "train")
    assert len(FolderDataset.open(folder_dataset, "all")) == 24


def test_not_a_dataset_folder(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        FolderDataset.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a dataset folder"):
        FolderDataset.open(tmp_path / "empty")


def test_check_reports_every_problem_at_once(folder_dataset):
    (folder_dataset / "masks" / "c0" / "000.png").unlink()
    Image.new("L", (5, 5)).save(folder_dataset / "masks" / "c2" / "000.png")
    cut = folder_dataset / "images" / "c4" / "001.png"
    cut.write_bytes(cut.read_bytes()[:-200])
    (folder_dataset / "images" / "c7").mkdir()
    report = check_dataset(folder_dataset)
    text = "\n".join(report.problems)
    assert not report.ok and len(report.problems) == 4
    for expected in (
        "c0/000.png: mask missing",
        "mask is 5x5",
        "c4/001.png: corrupt or truncated",
        "images/c7: empty class",
    ):
        assert expected in text
    assert report.splits == {
        "train": {"classes": 2, "images": 8},
        "val": {"classes": 2, "images": 8},
        "test": {"classes": 2, "images": 8},
    }
    assert report.missing_masks == 1


def test_cached_dataset_decodes_each_file_once(folder_dataset, monkeypatch):
    import bgbias.data.datasets as datasets

    calls = []
    original = datasets.decode_image
    monkeypatch.setattr(
        datasets, "decode_image", lambda p, side=None: calls.append(p) or original(p, side)
    )
    ds = FolderDataset.open(
        folder_dataset, "train", PairedTransform(RECIPES.get("generated"), True), cache=True
    )
    for _ in range(3):
        ds[0]
    assert len(calls) == 1
    clone = ds.with_transform(PairedTransform(RECIPES.get("generated"), False))
    clone[0]
    assert len(calls) == 1 and clone.transform is not ds.transform


def test_write_class_split_is_class_disjoint(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {f"k{i}": 2 for i in range(10)})
    splits = write_class_split(root, {"train": 0.5, "val": 0.2, "test": 0.3})
    assert [len(v) for v in splits.values()] == [5, 2, 3]
    assert splits["train"] == [f"k{i}" for i in range(5)]  # sorted order by default
    assert FolderDataset.open(root, "val").classes == ["k5", "k6"]
    with pytest.raises(DataError, match="too few"):
        write_class_split(
            root,
            {
                "a": 1,
                "b": 1,
                "c": 1,
                "d": 1,
                "e": 1,
                "f": 1,
                "g": 1,
                "h": 1,
                "i": 1,
                "j": 1,
                "k": 1,
            },
        )


def test_dataset_works_in_a_dataloader_worker(folder_dataset):
    ds = FolderDataset.open(folder_dataset, "val", PairedTransform(RECIPES.get("generated"), False))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1)
    x, m, y = next(iter(loader))
    assert x.shape == (4, 3, 64, 64) and m.shape == (4, 1, 64, 64) and y.tolist() == [0, 0, 0, 0]


def test_sample_ids_do_not_depend_on_where_the_dataset_lies(folder_dataset, tmp_path):
    # attention CSVs and audits key images by id: it must survive a move to another machine
    import shutil

    ids = [s.id for s in FolderDataset.open(folder_dataset, "train").samples]
    assert ids == ["c0/000.png", "c0/001.png", "c0/002.png", "c0/003.png"] + [
        f"c1/00{i}.png" for i in range(4)
    ]
    moved = shutil.copytree(folder_dataset, tmp_path / "elsewhere" / "copy")
    assert [s.id for s in FolderDataset.open(moved, "train").samples] == ids
    # the index.csv layout names the same images with the same ids
    listed = [s.id for s in FolderDataset.open(moved, "all").samples]
    (moved / "index.csv").write_text(
        "path,label\n" + "".join(f"{i},{i.split('/')[0]}\n" for i in reversed(listed))
    )
    assert sorted(s.id for s in FolderDataset.open(moved, "train").samples) == ids


def test_a_link_loop_is_reported_not_followed(folder_dataset):
    (folder_dataset / "images" / "c0" / "loop").symlink_to(".", target_is_directory=True)
    report = check_dataset(folder_dataset)
    assert not report.ok and report.splits["train"]["images"] == 8  # c0 listed once
    assert any("loop" in p and "not followed" in p for p in report.problems)
    with pytest.raises(DataProblems, match="link loop"):
        FolderDataset.open(folder_dataset, "train")


def test_two_links_back_up_do_not_hang(folder_dataset):
    for name in ("up1", "up2"):
        (folder_dataset / "images" / "c1" / name).symlink_to("..", target_is_directory=True)
    report = check_dataset(folder_dataset)
    assert report.splits["train"]["images"] == 8
    assert sum("not followed" in p for p in report.problems) == 2


def test_a_linked_folder_is_still_read(folder_dataset, tmp_path):
    # `bgbias data import` links the user's extracted folder into ROOT/images
    outside = tmp_path / "outside"
    (folder_dataset / "images" / "c0").rename(outside)
    (folder_dataset / "images" / "c0").symlink_to(outside, target_is_directory=True)
    assert len(FolderDataset.open(folder_dataset, "train")) == 8


def test_a_mistyped_root_is_an_error_not_a_new_benchmark(tmp_path):
    from bgbias.data.registry import open_split

    typo = tmp_path / "benchmrak"
    with pytest.raises(DataError, match="benchmrak: the generated benchmark not found; make it"):
        open_split("generated", typo, "train")
    assert not typo.exists()


def test_check_reports_masks_of_a_wrong_kind_in_both_modes(folder_dataset):
    masks = folder_dataset / "masks"
    grey = np.asarray(Image.open(masks / "c0" / "000.png"))
    Image.fromarray(np.stack([grey] * 4, axis=-1)).save(masks / "c0" / "000.png")  # RGBA
    red = np.stack([grey, grey * 0, grey * 0], axis=-1)
    Image.fromarray(red).save(masks / "c2" / "001.png")  # coloured RGB
    eight_bit = np.asarray(Image.open(masks / "c4" / "002.png"))
    Image.fromarray(eight_bit.astype(np.uint16) * 257).save(masks / "c4" / "002.png")  # accepted
    quick = check_dataset(folder_dataset, verify="header")
    assert [p.split(": ", 1)[0] for p in quick.problems] == [str(masks / "c0" / "000.png")]
    assert "alpha channel (mode RGBA)" in quick.problems[0]
    full = check_dataset(folder_dataset, verify="full")
    assert len(full.problems) == 2
    assert "alpha channel" in full.problems[0]
    assert full.problems[1].startswith(f"{masks / 'c2' / '001.png'}: RGB mask has coloured pixels")
    with pytest.raises(DataProblems, match=r"c0/000\.png: mask has an alpha channel"):
        FolderDataset.open(folder_dataset, "train")
    test_set = FolderDataset.open(
        folder_dataset, "test", PairedTransform(RECIPES.get("generated"), False)
    )
    _, mask = test_set.load(2)
    assert np.array_equal(np.asarray(mask), eight_bit)


@pytest.mark.parametrize("mask_made_from", ["displayed", "stored"])
@pytest.mark.parametrize("verify", ["header", "full"])
def test_rotated_phone_photo_and_its_mask_stay_aligned(tmp_path, mask_made_from, verify):
    """A JPEG stored sideways with EXIF orientation 6, and its mask made from either the
    displayed image (bgbias masks, rembg's remove) or the stored pixel array."""
    root = tmp_path / "ds"
    (root / "images" / "bird").mkdir(parents=True)
    (root / "masks" / "bird").mkdir(parents=True)
    mask = np.zeros((48, 64), dtype=np.uint8)  # displayed: landscape, object top-left
    mask[6:22, 8:30] = 255
    displayed = np.where(mask[:, :, None] > 0, 230, 20).astype(np.uint8).repeat(3, axis=2)
    write_oriented_jpeg(root / "images" / "bird" / "0.jpg", displayed, orientation=6)
    stored_mask = Image.fromarray(mask)
    if mask_made_from == "stored":
        stored_mask = stored_mask.transpose(Image.Transpose.ROTATE_90)
    stored_mask.save(root / "masks" / "bird" / "0.png")
    recipe = RECIPES.get("generated")  # shorter side to 64, centre crop 64
    ds = FolderDataset.open(
        root, "all", PairedTransform(recipe, train=False), require_masks=True, verify=verify
    )
    x, m, _ = ds[0]
    bright = recipe.normalization.inverse(x).mean(dim=0) > 0.5
    assert bright.shape == (64, 64)
    assert bright[20, 10] and not bright[40, 50]  # the object is top-left, as displayed
    assert (bright == (m[0] > 0.5)).float().mean() > 0.98  # image and mask agree
