"""What README.md, docs/ and the messages in src/ tell a user to type exists: every
``pip install "bgbias[X]"`` names an extra of pyproject.toml, every model form is spelled as its
registry entry, and no page points at a file that does not ship with bgbias."""

from __future__ import annotations

import re

from bgbias.adapters import ADAPTERS
from tests.helpers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SOURCES = sorted((REPO / "src" / "bgbias").rglob("*.py"))


def texts(paths) -> dict[str, str]:
    return {str(path.relative_to(REPO)): path.read_text() for path in paths}


def extras() -> set[str]:
    """The extras of pyproject.toml's [project.optional-dependencies] (no tomllib on 3.10)."""
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+) = \[", section, re.M))


def test_every_extra_a_page_or_message_names_exists():
    named = {}
    for where, text in texts(PAGES + SOURCES).items():
        for match in re.finditer(r"(?:bgbias|\.)\[([\w,-]+)\]", text):
            for name in match.group(1).split(","):
                named.setdefault(name, where)
    assert {"dev", "serve", "timm", "slurm", "milvus"} <= set(named)
    unknown = {name: where for name, where in named.items() if name not in extras()}
    assert not unknown, f"extras pyproject.toml does not define: {unknown}"


def test_model_forms_are_spelled_as_their_registry_entries():
    prefixes = {ADAPTERS.get(name).prefix for name in ADAPTERS.names()} - {None}
    assert {"onnx", "torchscript", "timm", "hf", "open_clip", "python"} <= prefixes
    wrong = []
    for where, text in texts(PAGES).items():
        # `timm:<name>`, `hf:` : a form's syntax, as the pages write it
        for match in re.finditer(r"`(\w+)([:/])(?:<[^`]*)?`", text):
            prefix, separator = match.groups()
            if prefix in prefixes and separator == ":":
                continue
            if prefix in prefixes or prefix.lower() in {p.replace("_", "") for p in prefixes}:
                wrong.append(f"{where}: {match.group(0)}")
    assert not wrong, f"model forms spelled unlike `bgbias list model-forms`: {wrong}"


def test_no_page_or_docstring_points_at_files_that_do_not_ship():
    unshipped = re.compile(r"PAPER\.md|DESIGN\.md|\.\./shared|\bshared/data\b")
    found = [
        f"{where}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
        for where, text in texts(PAGES + SOURCES).items()
        for match in unshipped.finditer(text)
    ]
    assert not found, f"references to files a user of bgbias does not have: {found}"
