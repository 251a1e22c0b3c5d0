"""The CLI starts at once and talks plainly: `--help` and `--version` import no torch (nor any
other heavy stack), option values from registries are checked when given, every default is
shown once, and a reader that stops early (`| head -1`) ends it quietly."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest

from bgbias.cli import EXIT_BROKEN_PIPE, build_parser
from bgbias.commands._common import EMPTY_DEFAULTS, RegistryChoice
from bgbias.commands.lists import KINDS

# what a parser must never import: each costs from a tenth of a second (numpy) to seconds
HEAVY = (
    "torch",
    "numpy",
    "PIL",
    "lightning",
    "onnxruntime",
    "fastapi",
    "matplotlib",
    "scipy",
    "cv2",
    "faiss",
    "omegaconf",
    "pytorch_metric_learning",
)


def parsers(parser: argparse.ArgumentParser, argv: tuple[str, ...] = ()):
    """(argv, parser) of the parser and of every subcommand under it, nested ones too."""
    yield argv, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*argv, name))


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_help_and_version_import_no_heavy_library():
    # one fresh interpreter walks every command's --help; the first argv that brings a heavy
    # module in is named
    code = (
        textwrap.dedent(
            """
        import argparse, json, sys
        from bgbias.cli import build_parser, main
        """
        )
        + inspect.getsource(parsers)
        + textwrap.dedent(
            f"""
        HEAVY = {HEAVY!r}
        runs = [[], ["--version"]] + [[*argv, "--help"] for argv, _ in parsers(build_parser())]
        first = {{}}
        for argv in runs:
            try:
                main(argv)
            except SystemExit:
                pass
            for name in HEAVY:
                if name in sys.modules:
                    first.setdefault(name, " ".join(["bgbias", *argv]))
        print(json.dumps({{"runs": len(runs), "imported": first}}))
        """
        )
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["runs"] > 20  # every command and the data/backgrounds/models actions
    assert report["imported"] == {}


def test_every_default_is_shown_once():
    for argv, parser in parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help in (None, argparse.SUPPRESS):
                continue
            text = formatter._expand_help(action)
            where = " ".join(["bgbias", *argv, *action.option_strings[:1]]) or action.dest
            assert text.count("default") <= 1, f"{where}: {text}"
            if action.default not in (*EMPTY_DEFAULTS, argparse.SUPPRESS) and action.nargs != 0:
                assert "default" in text, f"{where} does not show its default: {text}"


def test_registry_options_say_where_their_names_are_listed_and_check_them():
    lazy = [
        (argv, action)
        for argv, parser in parsers(build_parser())
        for action in parser._actions
        if isinstance(action, RegistryChoice)
    ]
    assert len(lazy) >= 12
    for argv, action in lazy:
        where = " ".join(["bgbias", *argv, *action.option_strings[:1]]) or action.dest
        names = list(action.names())
        assert names, where
        listing = action.help.split("see `")[1].split("`")[0]
        if listing.startswith("bgbias list "):
            assert listing.removeprefix("bgbias list ") in KINDS, where
        if action.default is not None:
            assert action.default in names, f"{where}: default {action.default!r} not in {names}"


def test_a_registry_choice_is_a_usage_error_listing_the_names(capsys):
    from bgbias.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["demo", "--loss", "magic"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("bgbias demo: error: argument --loss: invalid choice: 'magic'")
    assert "triplet" in error and "contrastive" in error


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
def test_a_reader_that_leaves_early_ends_it_quietly(unbuffered):
    # the read end is closed before bgbias writes (its start takes far longer), so every
    # write meets a broken pipe, buffered or not
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    process = subprocess.Popen(
        [sys.executable, "-m", "bgbias", "list", "presets"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert err == ""


def test_list_presets_into_head():
    from bgbias.presets import preset_names

    result = subprocess.run(
        f"{sys.executable} -m bgbias list presets | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == preset_names()[0] + "\n"
