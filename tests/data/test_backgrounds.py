import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from bgbias.data.backgrounds import BORDER, BackgroundBank, check_disjoint, load_banks
from bgbias.errors import DataError, DataProblems
from tests.helpers import SHARED


def _photos(folder, sizes, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    formats = ["jpg", "png", "webp"]
    for i, (w, h) in enumerate(sizes):
        array = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"bg{i}.{formats[i % 3]}")


def test_folder_bank_decodes_any_size_once(tmp_path):
    _photos(tmp_path / "val", [(120, 80), (60, 90), (100, 100)])
    bank = BackgroundBank.from_folder(tmp_path / "val", short_side=32)
    assert len(bank) == 3 and bank.pixels.dtype == torch.uint8
    assert bank.sizes.tolist() == [[32, 48], [48, 32], [32, 32]]
    for i in range(3):
        h, w = bank.sizes[i].tolist()
        assert bank.image(i).shape == (3, h, w)
    # a replicated border surrounds each background inside the atlas
    y, x = bank.origins[0].tolist()
    assert torch.equal(bank.pixels[:, y - BORDER, x : x + 48], bank.pixels[:, y, x : x + 48])


def test_empty_or_unreadable_background_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no images"):
        BackgroundBank.from_folder(tmp_path / "empty", 32)
    _photos(tmp_path / "bad", [(40, 40)])
    (tmp_path / "bad" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataProblems, match=r"broken\.jpg: corrupt or truncated image"):
        BackgroundBank.from_folder(tmp_path / "bad", 32)
    with pytest.raises(DataError, match="not found"):
        BackgroundBank.from_folder(tmp_path / "nowhere", 32)


def test_banks_must_be_disjoint(tmp_path):
    _photos(tmp_path / "bgs" / "val", [(50, 40), (40, 50)], seed=1)
    _photos(tmp_path / "bgs" / "test", [(50, 40)], seed=2)
    banks = load_banks(tmp_path / "bgs", short_side=32)
    assert set(banks) == {"val", "test"}
    shutil.copy(tmp_path / "bgs" / "val" / "bg1.png", tmp_path / "bgs" / "test" / "copy.png")
    with pytest.raises(DataProblems, match="'copy.png' of 'test' is also in 'val' as 'bg1.png'"):
        load_banks(tmp_path / "bgs", short_side=32)


def test_missing_split_folder(tmp_path):
    _photos(tmp_path / "bgs" / "val", [(50, 40)])
    with pytest.raises(DataError, match="missing: test"):
        load_banks(tmp_path / "bgs", short_side=32)


def test_procedural_banks_are_seeded_and_disjoint():
    a = load_banks(None, short_side=24, count=10, seed=5)
    b = load_banks("procedural", short_side=24, count=10, seed=5)
    assert torch.equal(a["val"].pixels, b["val"].pixels)
    assert not set(a["val"].fingerprints()) & set(a["test"].fingerprints())
    check_disjoint(a)


@pytest.mark.skipif(not (SHARED / "unsplash_backgrounds").is_dir(), reason="needs ../shared/data")
def test_paper_background_sets_are_disjoint():
    banks = load_banks(SHARED / "unsplash_backgrounds", short_side=64)
    assert len(banks["val"]) == len(banks["test"]) == 100


def test_a_photo_shared_by_val_and_test_is_refused_when_only_one_bank_is_loaded(tmp_path):
    # training loads only val, evaluation only test: the check must still compare both folders
    _photos(tmp_path / "bgs" / "val", [(50, 40), (40, 50)], seed=1)
    _photos(tmp_path / "bgs" / "test", [(50, 40)], seed=2)
    shutil.copy(tmp_path / "bgs" / "val" / "bg1.png", tmp_path / "bgs" / "test" / "copy.png")
    for splits in (("val",), ("test",)):
        with pytest.raises(DataProblems, match="'copy.png' of 'test' is also in 'val'"):
            load_banks(tmp_path / "bgs", short_side=32, splits=splits)


def test_large_jpegs_give_the_bank_a_full_decode_would(tmp_path):
    """Photos at least twice the bank's side are decoded at reduced resolution (DCT scaling):
    same tile sizes, values within resampling noise (see tests/data/test_pixels.py)."""
    folder = tmp_path / "val"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(1200, 900), (700, 1000)]):
        coarse = rng.integers(0, 255, size=(h // 20, w // 20, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((w, h), Image.BICUBIC).save(folder / f"{i}.jpg")
    bank = BackgroundBank.from_folder(folder, short_side=128)
    for i, name in enumerate(bank.names):
        full = Image.open(folder / name).convert("RGB")
        w, h = full.size
        size = (128, int(128 * h / w)) if w <= h else (int(128 * w / h), 128)
        expected = torch.from_numpy(np.array(full.resize(size, Image.BILINEAR))).permute(2, 0, 1)
        tile = bank.image(i)
        assert tile.shape == expected.shape
        assert (tile.float() - expected.float()).abs().mean() < 1.5  # measured 1.05 at 1/4
