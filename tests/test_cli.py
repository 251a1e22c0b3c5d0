import json
import subprocess
import sys

import pytest

from bgbias import __version__
from bgbias.cli import main


def test_version_and_help(capsys):
    for argv in (["--version"], ["--help"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
    out = capsys.readouterr().out
    assert f"bgbias {__version__}" in out and "usage: bgbias" in out


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "bgbias", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == f"bgbias {__version__}"


def test_generate_then_check(tmp_path, capsys):
    out = tmp_path / "g"
    assert (
        main(
            [
                "data",
                "generate",
                str(out),
                "--image-size",
                "24",
                "--train-classes",
                "3",
                "--val-classes",
                "2",
                "--test-classes",
                "2",
                "--images-per-class",
                "3",
            ]
        )
        == 0
    )
    assert "wrote 21 images" in capsys.readouterr().out
    assert main(["data", "check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "train           3        9" in text and "test            2        6" in text
    assert "no problems found" in text
    assert main(["data", "check", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["splits"]["val"] == {"classes": 2, "images": 6}


def test_check_fails_and_lists_problems(folder_dataset, capsys):
    (folder_dataset / "masks" / "c1" / "000.png").unlink()
    (folder_dataset / "images" / "empty_class").mkdir()
    assert main(["data", "check", str(folder_dataset)]) == 1
    text = capsys.readouterr().out
    assert "2 problem(s)" in text and "c1/000.png: mask missing" in text and "empty class" in text


def test_errors_are_one_line_messages_not_tracebacks(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bgbias: error: ") and "dataset folder not found" in err
    assert "Traceback" not in err


def test_generate_refuses_non_empty_folder(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("keep")
    assert main(["data", "generate", str(tmp_path)]) == 1
    assert "holds files bgbias did not write (x.txt)" in capsys.readouterr().err
    assert (tmp_path / "x.txt").read_text() == "keep"


def test_split_command(tmp_path, capsys):
    from tests.helpers import write_folder_dataset

    root = write_folder_dataset(tmp_path / "ds", {f"k{i}": 2 for i in range(10)})
    assert (
        main(["data", "split", str(root), "--train", "0.6", "--val", "0.2", "--test", "0.2"]) == 0
    )
    assert "train: 6 classes, val: 2 classes, test: 2 classes" in capsys.readouterr().out


def test_overrides_may_stand_between_options(monkeypatch, tmp_path):
    import bgbias.demo as demo

    seen = {}

    def fake_run(config):
        seen["config"] = config
        config.out.mkdir(parents=True)
        (config.out / "table.md").write_text("table\n")
        return {"conclusion": [], "wall_seconds": 0.0}

    monkeypatch.setattr(demo, "run_demo", fake_run)
    assert main(["demo", "--out", str(tmp_path / "d"), "a.b=1", "--backgrounds", "bgs", "c=2"]) == 0
    assert seen["config"].overrides == ("a.b=1", "c=2") and seen["config"].backgrounds == "bgs"


def test_unknown_options_are_still_errors(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--nope"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


def test_each_word_means_one_thing_and_old_spellings_work_with_a_notice(capsys, monkeypatch):
    """'models' once meant mask weight files (`bgbias models`), model forms (`bgbias list
    models`) and the audited models; the first two are renamed, their old spellings still
    run (a user's scripts keep working) after one line saying what to write instead."""
    monkeypatch.setenv("BGBIAS_HOME", "/nonexistent-bgbias-home")
    for new, old, notice in (
        (
            ["mask-weights", "list"],
            ["models", "list"],
            "`bgbias models` is now `bgbias mask-weights`",
        ),
        (
            ["list", "model-forms"],
            ["list", "models"],
            "`bgbias list models` is now `bgbias list model-forms`",
        ),
    ):
        assert main(new) == 0
        expected = capsys.readouterr()
        assert expected.out and not expected.err
        assert main(old) == 0
        got = capsys.readouterr()
        assert got.out == expected.out
        assert got.err.splitlines() == [
            f"bgbias: warning: {notice}; the old name will be removed in the next release"
        ]
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    commands = [line.split()[0] for line in listed.splitlines() if line.startswith("    ")]
    assert "mask-weights" in commands and "models" not in commands
    with pytest.raises(SystemExit):
        main(["list", "--help"])
    usage = capsys.readouterr().out
    kinds = usage[usage.index("{") + 1 : usage.index("}")].split(",")
    assert "model-forms" in kinds and "models" not in kinds
