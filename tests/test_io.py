import os
from pathlib import Path

import pytest

from bgbias.io import atomic_write


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


def test_atomic_writes_have_ordinary_file_permissions(tmp_path: Path):
    # a dataset's masks are shared by a team: not the 0600 of a temporary file
    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_write(tmp_path / "m.png", "wb") as handle:
        handle.write(b"x")
    assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o666 & ~umask


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
