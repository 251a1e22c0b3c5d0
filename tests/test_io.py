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


def test_every_file_bgbias_writes_goes_through_its_atomic_writers():
    """One file writer: text, JSON and bytes go through bgbias.io (atomic, errors naming the
    file); appending to a log or a resumable CSV (mode "a") is the one exception."""
    import ast

    writes = {"write_text", "write_bytes", "dump"}  # Path.write_*, json.dump / yaml.dump
    found = []
    package = Path(__file__).resolve().parents[1] / "src" / "bgbias"
    for path in sorted(package.rglob("*.py")):
        if path.name == "io.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            direct = isinstance(func, ast.Attribute) and func.attr in writes
            modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
            modes += [k.value.value for k in node.keywords if k.arg == "mode"]
            opened = isinstance(func, ast.Name) and func.id == "open"
            writing = opened and any(isinstance(m, str) and m[0] in "wx" for m in modes)
            if direct or writing:
                found.append(f"{path.relative_to(package)}:{node.lineno}")
    assert found == []
