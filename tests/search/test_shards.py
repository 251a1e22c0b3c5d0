"""An index built in shards (locally, or as a SLURM job array through a fake sbatch) and
merged is the index one machine builds; unfinished shards are named, and rerun alone."""

import errno
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from bgbias.cli import main
from bgbias.errors import OutputError
from bgbias.search import build as build_module
from bgbias.search.build import build_index
from bgbias.search.index import SearchIndex
from bgbias.search.shards import launch_index_shards, merge_index
from tests.helpers import fake_slurm, run_slurm_jobs


def top_ids(index: SearchIndex, queries: np.ndarray, k: int = 10) -> list[list[str]]:
    _, positions = index.search(queries, k=k)
    return [[index.items[p]["id"] for p in row] for row in positions]


def assert_same_index(sharded: SearchIndex, straight: SearchIndex) -> None:
    """Same items in the same order, same vectors, same index, same top-10 for every query:
    each item's own vector and random ones."""
    assert sharded.items == straight.items
    assert sharded.manifest["index"] == straight.manifest["index"]
    stored = np.concatenate([straight.embedding(p) for p in range(len(straight))])
    assert np.array_equal(
        np.concatenate([sharded.embedding(p) for p in range(len(sharded))]), stored
    )
    queries = np.concatenate([stored, torch.randn(20, stored.shape[1]).numpy()])
    assert top_ids(sharded, queries) == top_ids(straight, queries)


def test_shards_through_sbatch_merge_into_the_one_machine_index(
    tmp_path, monkeypatch, capsys, catalogue, checkpoint
):
    pytest.importorskip("submitit")
    bin_dir = fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "shop"
    argv = ["index", str(checkpoint), str(catalogue), "--out", str(out), "--device", "cpu"]
    argv += ["--chunk-size", "4", "--launcher", "slurm", "--shards", "3", "--slurm-gpus", "1"]
    assert main(argv) == 0
    script = next(bin_dir.glob("submitted-*.sh")).read_text().splitlines()
    assert "#SBATCH --array=0-2%3" in script and "#SBATCH --job-name=bgbias-index" in script
    assert "submitted shard(s) 0, 1, 2 of 3" in capsys.readouterr().out
    assert run_slurm_jobs(bin_dir, lost=(1,)) == 2  # shard 1's node died
    # merging now names the missing shard in one line, and writes no index
    assert main(["index", "merge", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert (
        error.startswith(f"bgbias: error: {out}: shard(s) 1 of 3 not finished")
        and "\n" not in error
    )
    assert not out.exists()
    # the rerun submits shard 1 alone
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 of 3 shard(s) already finished" in printed and "submitted shard(s) 1 of 3" in printed
    assert len(list(bin_dir.glob("submitted-*.sh"))) == 2
    assert run_slurm_jobs(bin_dir) == 1
    assert main(["index", "merge", str(out)]) == 0
    assert f"wrote {out}: 20 items" in capsys.readouterr().out
    build_index(
        str(checkpoint),
        catalogue,
        tmp_path / "straight",
        device="cpu",
        chunk_size=4,
        progress=False,
    )
    assert_same_index(SearchIndex.load(out), SearchIndex.load(tmp_path / "straight"))
    assert not (tmp_path / ".shop.building").exists()


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_local_shards_of_a_trained_index_equal_the_one_machine_build(kind, tmp_path, checkpoint):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(100):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    common = {"index_type": kind, "chunk_size": 25, "device": "cpu", "progress": False}
    built = launch_index_shards(str(checkpoint), folder, tmp_path / "sharded", 3, **common)
    assert built.run.launched == [0, 1, 2] and built.manifest["index"]["params"]["nlist"] >= 2
    build_index(str(checkpoint), folder, tmp_path / "straight", **common)
    assert_same_index(
        SearchIndex.load(tmp_path / "sharded"), SearchIndex.load(tmp_path / "straight")
    )


def test_a_full_disk_in_a_shard_is_one_line_and_the_rerun_resumes(
    tmp_path, monkeypatch, capsys, catalogue, checkpoint
):
    out = tmp_path / "shop"
    argv = ["index", str(checkpoint), str(catalogue), "--out", str(out), "--device", "cpu"]
    argv += ["--chunk-size", "4", "--shards", "2", "-q"]
    saved = build_module.save_chunk
    calls = []

    def full_disk_on_the_fourth_chunk(path, *args, **kwargs):
        calls.append(path.name)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return saved(path, *args, **kwargs)

    monkeypatch.setattr(build_module, "save_chunk", full_disk_on_the_fourth_chunk)
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"bgbias: error: {out}: cannot write") and "No space left" in error
    assert "\n" not in error
    assert not out.exists() and not (tmp_path / ".shop.building" / "manifest.json").exists()
    with pytest.raises(OutputError, match="shard\\(s\\) 1 of 2 not finished"):
        merge_index(out, progress=False)
    monkeypatch.setattr(build_module, "save_chunk", saved)
    calls.clear()
    assert main(argv) == 0
    assert "1 of 2 shard(s) already finished" in capsys.readouterr().out
    assert len(SearchIndex.load(out)) == 20
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build"]["resumed_images"] == 20 and manifest["catalogue"]["listed"] == 20


def test_merge_without_shards_is_one_line(tmp_path, capsys):
    assert main(["index", "merge", str(tmp_path / "nothing")]) == 1
    error = capsys.readouterr().err.strip()
    assert "no index built in shards to merge" in error and "\n" not in error


def test_more_shards_than_chunks_is_refused_before_anything_runs(tmp_path, catalogue, checkpoint):
    with pytest.raises(Exception, match="--shards 6: the catalogue makes only 5 chunk"):
        launch_index_shards(
            str(checkpoint), catalogue, tmp_path / "x", 6, chunk_size=4, device="cpu"
        )
    assert not (tmp_path / ".x.building" / "chunks").exists()


def test_the_slurm_commands_of_docs_scale_parse():
    """Every bgbias command of docs/scale.md's SLURM section is one the CLI accepts."""
    import re
    import shlex
    from pathlib import Path

    from bgbias.cli import build_parser

    page = (Path(__file__).resolve().parents[2] / "docs" / "scale.md").read_text()
    section = page.split("## Masks and embeddings on a SLURM cluster")[1].split("\n## ")[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)[1].replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    commands = [argv for argv in commands if argv and argv[0] == "bgbias"]
    assert [argv[1] for argv in commands] == ["masks", "index", "index"]
    parsed = [build_parser().parse_args(argv[1:]) for argv in commands]
    assert [args.launcher for args in parsed[:2]] == ["slurm", "slurm"]
    assert parsed[0].shards == parsed[1].shards == 16 and parsed[2].model == "merge"


def test_an_unreachable_milvus_stops_the_shards_before_any_is_submitted(
    tmp_path, monkeypatch, capsys, catalogue, checkpoint
):
    pytest.importorskip("pymilvus")
    pytest.importorskip("submitit")
    bin_dir = fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "shop"
    argv = ["index", str(checkpoint), str(catalogue), "--out", str(out), "--device", "cpu"]
    argv += ["--launcher", "slurm", "--shards", "2", "--milvus", "http://127.0.0.1:9"]
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert "http://127.0.0.1:9: cannot reach Milvus" in error and "\n" not in error
    assert not list(bin_dir.glob("submitted-*")) and not list(tmp_path.glob(".shop*"))
