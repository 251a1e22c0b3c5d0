"""Planning a reproduction: which presets, checked before anything runs or is written."""

import pytest

from bgbias.errors import ConfigError, DataError
from bgbias.reproduce import reproduce
from bgbias.reproduce.plan import Cell, find_cells, parse_stages, plan_cells


def test_cells_follow_the_pattern_and_nest_like_the_presets(tmp_path):
    cells = plan_cells("cub200/*/base", tmp_path, ["backgrounds.source=procedural"])
    assert sorted(c.preset for c in cells) == [
        "cub200/arcface/base",
        "cub200/contrastive/base",
        "cub200/multi_similarity/base",
        "cub200/normalized_softmax/base",
        "cub200/triplet/base",
    ]
    cell = next(c for c in cells if c.preset == "cub200/arcface/base")
    assert cell.folder == tmp_path / "cub200" / "arcface" / "base" and cell.root == tmp_path
    assert cell.command("train") == [
        "train",
        "cub200/arcface/base",
        f"output_dir={cell.run_dir}",
        "backgrounds.source=procedural",
        "overwrite=true",
    ]
    cell.last.parent.mkdir(parents=True)
    cell.last.write_bytes(b"a killed run's checkpoint")
    assert cell.command("train")[-1] == "resume=true"
    assert cell.command("evaluate") == [
        "evaluate",
        str(cell.best),
        "--repeats",
        "5",
        "--out",
        str(cell.evaluation),
    ]
    # 3 paper datasets, generated and folder: 5 families x 5 losses x 3 modes
    assert len(plan_cells("*/*/*", tmp_path, ["backgrounds.source=procedural"])) == 75
    assert not list(tmp_path.glob("*/*/*/cell.json"))  # planning writes nothing


def test_cell_round_trips_through_its_file(tmp_path):
    cell = Cell("generated/triplet/base", tmp_path / "g", ("a=1",), ("train",), 3, 7)
    cell.folder.mkdir()
    cell.save()
    assert Cell.load(cell.folder) == cell
    assert find_cells(tmp_path) == [cell]
    (cell.folder / "cell.json").write_text("{broken")
    with pytest.raises(ConfigError, match="not a readable reproduce cell"):
        Cell.load(cell.folder)


@pytest.mark.parametrize(
    ("pattern", "overrides", "message"),
    [
        ("nothing/*", [], "no preset matches 'nothing/\\*'"),
        ("generated/*/*", ["output_dir=x"], "reproduce sets output_dir, resume, overwrite"),
        ("generated/*/*", ["trainer.max_epochs=0"], "trainer.max_epochs=0 must be >= 1"),
        ("generated/*/*", ["trainer.nope=1"], "trainer.nope"),
    ],
)
def test_bad_plans_stop_before_anything_is_written(tmp_path, pattern, overrides, message):
    with pytest.raises(ConfigError, match=message):
        reproduce(pattern, tmp_path / "out", overrides)
    assert not (tmp_path / "out").exists()


def test_paper_presets_need_the_photos_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("BGBIAS_HOME", str(tmp_path / "home"))
    with pytest.raises(DataError, match="bgbias backgrounds fetch paper"):
        reproduce("cars196/*/*", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # attention scores alone use no background photos
    assert len(plan_cells("cars196/*/*", tmp_path / "out", stages=("attention",))) == 15


def test_stages_are_checked_and_kept_in_pipeline_order():
    assert parse_stages("attention,train") == ("train", "attention")
    with pytest.raises(ConfigError, match="--stages: fit; choose from train, evaluate, attention"):
        parse_stages("train,fit")
