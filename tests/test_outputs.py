"""The output-folder contract every command shares (bgbias.outputs): what a command may write
into, what it refuses, and that a failed, killed or full-disk run leaves the previous result."""

import errno
import json
import os
import subprocess
import sys

import pytest

from bgbias.errors import OutputError
from bgbias.io import write_text
from bgbias.outputs import (
    MARKER,
    check_output,
    claim_output,
    remove_dead_stages,
    staging,
    swap_in,
)


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _publish(out, text, fail=None):
    """A command's writer: result.txt and done.json built in a stage, then swapped in."""
    with staging(out, "audit") as stage:
        write_text(stage / "result.txt", text)
        if fail is not None:
            raise fail
        write_text(stage / "done.json", json.dumps({"text": text}))
        swap_in(stage, out, ["done.json", "result.txt"])


def test_a_new_folder_is_created_and_marked_only_when_claimed(tmp_path):
    out = tmp_path / "a" / "new"
    assert check_output(out, "audit") == out and not out.exists()  # checking writes nothing
    assert claim_output(out, "audit") == out
    assert json.loads((out / MARKER).read_text()) == {"kind": "audit", "version": 1}


def test_an_empty_folder_or_one_with_only_bgbias_locks_is_claimed(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / ".bgbias-audit.lock").touch()
    claim_output(tmp_path / "e", "audit")
    assert (tmp_path / "e" / MARKER).is_file()


def test_a_folder_with_its_own_marker_is_reused_with_the_users_files_kept(tmp_path):
    out = claim_output(tmp_path / "o", "audit")
    (out / "notes.txt").write_text("mine")
    _publish(out, "first")
    _publish(claim_output(out, "audit"), "second")
    assert (out / "result.txt").read_text() == "second" and (
        out / "notes.txt"
    ).read_text() == "mine"


def test_a_folder_of_other_files_is_refused_in_one_line_naming_it(tmp_path):
    out = tmp_path / "project"
    (out / "src").mkdir(parents=True)
    (out / "manifest.json").write_text('{"name": "web", "start_url": "/"}')  # not an index's
    before = _tree(out)
    for kind in ("audit", "index", "train"):
        with pytest.raises(OutputError) as info:
            claim_output(out, kind)
        message = str(info.value)
        assert message.startswith(f"{out}: holds files bgbias did not write (manifest.json, src)")
        assert message.endswith("choose an empty or new folder") and "\n" not in message
    assert _tree(out) == before and not (out / MARKER).exists()


def test_another_commands_folder_is_refused_marker_or_older_layout(tmp_path):
    marked = claim_output(tmp_path / "index", "index")
    with pytest.raises(OutputError, match="index: holds a bgbias index output, not a train one"):
        claim_output(marked, "train")
    older = tmp_path / "old-index"  # written by a bgbias from before markers
    older.mkdir()
    manifest = {"format": 1, "bgbias_version": "0.1", "index": {"backend": "faiss"}}
    (older / "manifest.json").write_text(json.dumps(manifest))
    assert claim_output(older, "index") == older
    older_run = tmp_path / "old-run"
    (older_run / "checkpoints").mkdir(parents=True)
    (older_run / "config.yaml").write_text("output_dir: x\ndata: {}\nmodel: {}\n")
    with pytest.raises(OutputError, match="old-run: holds a bgbias train output, not a audit"):
        claim_output(older_run, "audit")
    assert claim_output(older_run, "train") == older_run


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputError, match="out: is a file, not a folder"):
        claim_output(tmp_path / "out", "audit")


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("the model returned NaN"), OSError(errno.ENOSPC, "No space left on device")],
)
def test_a_failed_or_full_disk_run_leaves_the_previous_result(tmp_path, failure):
    out = claim_output(tmp_path / "o", "audit")
    _publish(out, "complete")
    before = _tree(out)
    with pytest.raises(type(failure)):
        _publish(out, "half", fail=failure)
    assert _tree(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".bgbias-stage-")]


def test_a_failed_swap_puts_the_previous_result_back(tmp_path, monkeypatch):
    out = claim_output(tmp_path / "o", "audit")
    _publish(out, "complete")
    before = _tree(out)
    replace, failed = os.replace, []

    def failing(source, target):  # the new done.json, the swap's last move, fails once
        if str(source).endswith("done.json") and "replaced" not in str(source) and not failed:
            failed.append(source)
            raise OSError(errno.EIO, "Input/output error")
        replace(source, target)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OutputError, match="could not put the new result in place"):
        _publish(out, "new")
    monkeypatch.setattr(os, "replace", replace)
    assert _tree(out) == before and failed


KILLED_WRITER = """
import sys, time
from pathlib import Path
from bgbias.io import write_text
from bgbias.outputs import claim_output, staging
out = claim_output(Path(sys.argv[1]), "audit")
with staging(out, "audit") as stage:
    write_text(stage / "result.txt", "half")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_killed_run_leaves_the_previous_result_and_its_stage_is_cleared_later(tmp_path):
    out = claim_output(tmp_path / "o", "audit")
    _publish(out, "complete")
    before = _tree(out)
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline() == "writing\n"  # mid-write, its stage holds a half result
    writer.kill()
    writer.wait()
    (stage,) = [p for p in out.iterdir() if p.name.startswith(".bgbias-stage-audit-")]
    assert {p: b for p, b in _tree(out).items() if not str(p).startswith(".bgbias-stage")} == before
    assert remove_dead_stages(out, "audit") == [stage]  # its process is provably gone
    assert _tree(out) == before


def test_only_a_dead_jobs_own_stage_is_ever_removed(tmp_path):
    out = claim_output(tmp_path / "o", "audit")
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid now names no process
    keep = [
        out / f".bgbias-stage-audit-{os.getppid()}-aa",  # a live process's
        out / f".bgbias-stage-index-{finished.pid}-bb",  # another kind's
        out / ".shop.building",  # another command's temporary folder
        out / ".report.md.x1y2.tmp",
    ]
    for path in keep:
        path.mkdir()
    dead = out / f".bgbias-stage-audit-{finished.pid}-cc"
    dead.mkdir()
    assert remove_dead_stages(out, "audit") == [dead]
    assert all(path.exists() for path in keep)
