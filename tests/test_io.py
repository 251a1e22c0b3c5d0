import os
from pathlib import Path

import pytest
from PIL import Image

from bgbias.errors import DataError
from bgbias.io import atomic_write, load_image, load_mask, read_size


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path: Path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_old_content(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_write(target, "w") as handle:
        handle.write("new")
    assert target.read_text() == "new"


def test_truncated_image_is_reported_with_its_path(tmp_path: Path):
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.jpg: corrupt or truncated image"):
        load_image(path)


def test_garbage_file_is_not_an_image(tmp_path: Path):
    path = tmp_path / "junk.png"
    path.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"junk\.png"):
        read_size(path)
    with pytest.raises(DataError, match=r"junk\.png: corrupt"):
        load_image(path)


def test_mask_of_wrong_size_names_both_sizes(tmp_path: Path):
    path = tmp_path / "m.png"
    Image.new("L", (10, 12)).save(path)
    with pytest.raises(DataError, match=r"m\.png: mask is 10x12 but its image is 10x10"):
        load_mask(path, expected_size=(10, 10))


def test_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_lock_folder_admits_one_job_and_clears_leftovers(tmp_path):
    from bgbias.errors import OutputError
    from bgbias.io import lock_folder

    (tmp_path / ".report.json.abc.tmp").write_text("half")
    lock = lock_folder(tmp_path, "audit")
    try:
        assert not (tmp_path / ".report.json.abc.tmp").exists()
        with pytest.raises(OutputError, match="another audit job is writing here"):
            lock_folder(tmp_path, "audit")
    finally:
        lock.release()
    lock_folder(tmp_path, "audit").release()  # free again once released
