"""Nothing dead: every module constant is read somewhere, every .gitignore entry matches
something bgbias, its tools or its build write."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READERS = ("src", "tests", "bench", "docs")
# what the tools write: the environment, caches, the build and the docs site
TOOL_OUTPUTS = {".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", ".hypothesis"}
TOOL_OUTPUTS |= {"build", "dist", "site"}


def module_constants(path: Path) -> list[str]:
    """UPPER_CASE names a module assigns a value (not a call: registering something and
    keeping its handle is a side effect, not a constant)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and not isinstance(node.value, ast.Call):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                names += [e.id for e in elements if isinstance(e, ast.Name)]
    return [n for n in names if n.isupper() and not n.startswith("_")]


def test_every_module_constant_is_read_somewhere():
    words = Counter(
        word
        for folder in READERS
        for p in (REPO / folder).rglob("*")
        if p.suffix in (".py", ".md") and p.is_file()
        for word in re.findall(r"\b[A-Z][A-Z0-9_]*\b", p.read_text())
    )
    unused = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / "src" / "bgbias").rglob("*.py"))
        for name in module_constants(path)
        if words[name] < 2  # its assignment only
    ]
    assert unused == []


def test_every_gitignore_entry_matches_something_written():
    """An entry is a tool's output or a default output folder that bgbias's code names."""
    source = "\n".join(p.read_text() for p in (REPO / "src" / "bgbias").rglob("*.py"))
    entries = [
        line.strip().strip("/")
        for line in (REPO / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    stale = [
        e
        for e in entries
        if e not in TOOL_OUTPUTS and f'"{e}"' not in source and f'Path("{e}")' not in source
    ]
    assert stale == []
