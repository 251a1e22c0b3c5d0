import json
import logging

import pytest

from bgbias.cli import main
from bgbias.data.generate import BenchmarkConfig
from bgbias.demo import DemoConfig, run_demo
from bgbias.errors import ConfigError

REDUCED = BenchmarkConfig(
    image_size=48, train_classes=16, val_classes=4, test_classes=8, images_per_class=10
)


@pytest.mark.slow
def test_reduced_demo_end_to_end(tmp_path):
    config = DemoConfig(
        out=tmp_path / "demo",
        benchmark=REDUCED,
        epochs=3,
        repeats=3,
        attention_images=40,
        figure_images=2,
        overrides=(
            "data.iterations_per_epoch=60",
            "data.batch_size=16",  # one image of each of the 16 train classes (m=1)
            "backgrounds.count=30",
            "trainer.enable_progress_bar=false",
        ),
    )
    results = run_demo(config)
    out = tmp_path / "demo"
    for name in (
        "results.json",
        "table.md",
        "table.tex",
        "map_at_r.png",
        "attribution.png",
        "retrieval.png",
    ):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert saved["wall_seconds"] > 0 and set(saved["models"]) == {"base", "bgaugment"}
    for model in saved["models"].values():
        assert set(model["clean"]) == {"map_at_r", "precision_at_1", "r_precision"}
        assert len(model["corrupted"]["map_at_r"]["values"]) == 3
        assert 0 <= model["corrupted"]["map_at_r"]["mean"] <= 1
        assert {"mean", "std"} <= set(model["attention_score"])
    base, bga = saved["models"]["base"], saved["models"]["bgaugment"]
    base_drop = base["clean"]["map_at_r"] - base["corrupted"]["map_at_r"]["mean"]
    bga_drop = bga["clean"]["map_at_r"] - bga["corrupted"]["map_at_r"]["mean"]
    # the direction of the paper's finding, even at this size
    assert base_drop > 0.1 and bga_drop < base_drop
    assert bga["corrupted"]["map_at_r"]["mean"] > base["corrupted"]["map_at_r"]["mean"]
    assert bga["attention_score"]["mean"] > base["attention_score"]["mean"]
    assert results["conclusion"][0].startswith("Base model loses")
    assert "| Normalized Softmax + BGAugment |" in (out / "table.md").read_text()


@pytest.mark.slow
def test_demo_reuses_a_generated_benchmark(tmp_path, caplog):
    tiny = BenchmarkConfig(
        image_size=32, train_classes=8, val_classes=3, test_classes=3, images_per_class=4
    )
    config = DemoConfig(
        out=tmp_path / "d",
        benchmark=tiny,
        epochs=1,
        repeats=2,
        attention_images=4,
        figure_images=1,
        overrides=(
            "data.iterations_per_epoch=3",
            "data.batch_size=8",
            "backgrounds.count=8",
            "trainer.enable_progress_bar=false",
        ),
    )
    caplog.set_level(logging.INFO, logger="bgbias")
    run_demo(config)
    assert "[1/6] generating the benchmark" in caplog.text
    caplog.clear()
    run_demo(config)
    assert "[1/6] benchmark already in" in caplog.text
    assert f"replacing the previous run in {tmp_path / 'd' / 'runs' / 'base'}" in caplog.text


def test_demo_command_prints_the_table_and_conclusion(tmp_path, capsys, monkeypatch):
    import bgbias.demo as demo

    seen = {}

    def fake_run(config):
        seen["config"] = config
        config.out.mkdir(parents=True)
        (config.out / "table.md").write_text("| model | x |\n")
        return {
            "conclusion": ["Base model loses 50.0 MAP@R points", "BGAugment ..."],
            "wall_seconds": 1.0,
            "config": config,
        }

    monkeypatch.setattr(demo, "run_demo", fake_run)
    assert main(["demo", "--out", str(tmp_path / "x"), "--epochs", "2", "data.batch_size=16"]) == 0
    out = capsys.readouterr().out
    assert "| model | x |" in out and "Base model loses 50.0 MAP@R points" in out
    assert seen["config"].epochs == 2 and seen["config"].overrides == ("data.batch_size=16",)


def test_a_bad_override_stops_the_demo_before_it_touches_the_folder(tmp_path):
    out = tmp_path / "D"
    (out / "benchmark").mkdir(parents=True)
    (out / "benchmark" / "my-photos.txt").write_text("the user's own benchmark notes")
    tiny = BenchmarkConfig(
        image_size=32, train_classes=8, val_classes=3, test_classes=3, images_per_class=4
    )
    with pytest.raises(ConfigError, match="nosuch"):
        run_demo(DemoConfig(out=out, benchmark=tiny, overrides=("nosuch.key=1",)))
    assert [p.name for p in out.rglob("*")] == ["benchmark", "my-photos.txt"]


def test_demo_command_with_a_bad_override_keeps_the_folder(tmp_path, capsys):
    out = tmp_path / "D"
    (out / "benchmark").mkdir(parents=True)
    (out / "benchmark" / "my-photos.txt").write_text("mine")
    assert main(["demo", "--out", str(out), "nosuch.key=1"]) == 1
    assert "nosuch" in capsys.readouterr().err
    assert (out / "benchmark" / "my-photos.txt").read_text() == "mine"
