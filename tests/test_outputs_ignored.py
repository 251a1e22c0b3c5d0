"""What the commands write by default never shows up as new files in a checkout: every default
output folder is in .gitignore, and no test writes into the checkout (conftest.py runs each test
in its own folder)."""

import shutil
import subprocess

import pytest

from bgbias.config import compose
from bgbias.presets import preset_names
from tests.helpers import REPO, command_parsers


def default_outputs() -> dict[str, str]:
    """Where each command writes unless told otherwise, by who writes it."""
    found = {}
    for words, parser in command_parsers().items():
        for action in parser._actions:
            if "--out" in action.option_strings and isinstance(action.default, str):
                found[f"bgbias {' '.join(words)} --out"] = action.default
    families = {name.split("/")[0]: name for name in preset_names()}  # one preset of each
    for name in families.values():
        config = compose(name)
        found[f"bgbias train {name}"] = config.output_dir
        found[f"bgbias train {name}: data.root"] = config.data.root
    return found


def test_every_default_output_of_a_command_is_found():
    outputs = default_outputs()
    assert outputs["bgbias demo --out"] == "bgbias-demo"
    assert outputs["bgbias audit --out"] == "audit"
    trained = [path for who, path in outputs.items() if who.startswith("bgbias train")]
    assert len(trained) >= 6 and all(path.startswith(("runs/", "data/")) for path in trained)


@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout"
)
def test_default_outputs_are_ignored_by_git():
    outputs = default_outputs()
    # a file inside each folder: `/runs/` ignores runs/x but not a file named runs
    paths = [f"{path}/x" for path in outputs.values()]
    checked = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-z"],
        input="\0".join(paths),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    ignored = set(filter(None, checked.stdout.split("\0")))
    missing = {who: path for who, path in outputs.items() if f"{path}/x" not in ignored}
    assert not missing, f"default outputs .gitignore does not cover: {missing}"
