"""Named background sets: manifest, fetch from a local copy or a (local test) server, resume."""

import json
import shutil

import pytest

from bgbias.cli import main
from bgbias.data import background_sets
from bgbias.data.background_sets import (
    BACKGROUND_SETS,
    MissingBackgroundsError,
    fetch_background_set,
    installed_folder,
)
from bgbias.data.backgrounds import load_banks
from bgbias.downloads import AssetError
from tests.helpers import SHARED, register_background_set, serve_folder

PAPER_COPY = SHARED / "unsplash_backgrounds"


@pytest.fixture
def tiny_set(tmp_path, monkeypatch):
    """A registered set 'tiny' whose manifest lists the photos of ``tmp_path/copy``."""
    files = register_background_set(tmp_path, monkeypatch, "tiny", "a tiny test set")
    return tmp_path / "copy", files


def test_fetch_from_a_local_copy_and_resume(tiny_set):
    copy, files = tiny_set
    summary = fetch_background_set("tiny", source=copy, progress=False)
    folder = installed_folder("tiny")
    assert summary["installed"] == 5 and summary["already_installed"] == 0
    for f in files:
        assert (folder / f.split / f.name).read_bytes() == (copy / f.split / f.name).read_bytes()
    again = fetch_background_set("tiny", source=copy, progress=False)
    assert again["installed"] == 0 and again["already_installed"] == 5
    banks = load_banks("tiny", short_side=16)  # a set name resolves to its installed folder
    assert len(banks["val"]) == 3 and len(banks["test"]) == 2


def test_a_tampered_photo_in_the_local_copy_is_refused(tiny_set):
    copy, files = tiny_set
    bad = copy / "val" / files[1].name
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x00")
    with pytest.raises(AssetError, match=rf"1 of 5 tiny photos failed.*{files[1].name}: sha256"):
        fetch_background_set("tiny", source=copy, progress=False)
    home = background_sets.BACKGROUND_SETS.get("tiny").folder
    assert not (home / "val" / files[1].name).exists()  # nothing unverified lands
    assert (home / "val" / files[0].name).is_file()  # the good ones are kept
    with pytest.raises(MissingBackgroundsError, match="1 of 5 photos are not installed"):
        installed_folder("tiny")
    with pytest.raises(AssetError, match="no test/ folder"):
        shutil.rmtree(copy / "test")
        fetch_background_set("tiny", source=copy, progress=False)


def test_download_checks_every_photo_and_resumes(tiny_set, tmp_path):
    copy, files = tiny_set
    served = tmp_path / "served"
    shutil.copytree(copy, served)
    tampered, cut = served / "val" / files[0].name, files[3].name
    tampered.write_bytes(tampered.read_bytes() + b"extra")
    with serve_folder(served, cut_short=(cut,)) as url:
        template = url + "/{split}/{name}"
        failed = r"2 of 5 tiny photos failed, the other 3 are installed"
        with pytest.raises(AssetError, match=failed):
            fetch_background_set("tiny", url=template, progress=False)
        shutil.copy(copy / "val" / files[0].name, tampered)  # the mirror is repaired
        with pytest.raises(AssetError, match=r"1 of 5 tiny photos failed.*download failed"):
            fetch_background_set("tiny", url=template, progress=False)
    with serve_folder(served) as url:
        summary = fetch_background_set("tiny", url=url + "/{split}/{name}", progress=False)
    assert summary["installed"] == 1 and summary["already_installed"] == 4
    folder = installed_folder("tiny")
    assert sorted(p.name for p in folder.rglob("*") if p.is_file() and p.suffix == ".jpeg") == (
        sorted(f.name for f in files)
    )


def test_missing_set_says_how_to_fetch_it(tiny_set):
    with pytest.raises(MissingBackgroundsError, match="5 of 5 .*bgbias backgrounds fetch tiny"):
        load_banks("tiny", short_side=16, splits=("val",))


def test_backgrounds_commands(tiny_set, capsys):
    copy, _ = tiny_set
    assert main(["backgrounds", "list"]) == 0
    assert "tiny        a tiny test set: 0 of 5 photos installed" in capsys.readouterr().out
    assert main(["backgrounds", "fetch", "tiny", "--from", str(copy)]) == 0
    assert "5 photos in" in capsys.readouterr().out
    assert main(["backgrounds", "list"]) == 0
    assert "a tiny test set: installed in" in capsys.readouterr().out
    assert main(["backgrounds", "fetch", "tiny", "--url", "http://x/{name}"]) == 1
    assert "needs {split} and {name}" in capsys.readouterr().err


def test_paper_manifest_lists_200_photos_from_a_pinned_commit():
    paper = BACKGROUND_SETS.get("paper")
    files = paper.files()
    assert [sum(f.split == s for f in files) for s in ("val", "test")] == [100, 100]
    assert len({f.sha256 for f in files}) == 200  # val and test share no photo
    assert "/629df667cb77638ccb1eb9feda52700f53ad2c3c/data/unsplash_backgrounds/" in paper.url
    manifest = json.loads(
        (background_sets.resources.files("bgbias") / "assets" / paper.manifest).read_text()
    )
    assert manifest["commit"] in paper.url


@pytest.mark.skipif(not PAPER_COPY.is_dir(), reason="needs ../shared/data/unsplash_backgrounds")
def test_paper_manifest_matches_the_shared_copy_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path))
    files = BACKGROUND_SETS.get("paper").files()
    on_disk = {(p.parent.name, p.name) for p in PAPER_COPY.glob("*/*") if p.is_file()}
    assert on_disk == {(f.split, f.name) for f in files}
    summary = fetch_background_set("paper", source=PAPER_COPY, progress=False)
    assert summary["installed"] == 200
    folder = installed_folder("paper")
    assert folder == tmp_path / "backgrounds" / "paper"
    banks = load_banks("paper", short_side=64, splits=("test",))
    assert len(banks["test"]) == 100
