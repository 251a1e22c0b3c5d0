"""The documentation cannot rot: the site builds with warnings as errors, and every code block of
docs/python-api.md runs.

How docs/python-api.md is run:

* Each ``## `` section is one example. Its ```python blocks run in page order in one namespace,
  as notebook cells do; every section starts from a fresh namespace.
* Each section runs in its own temporary working directory holding the data the page names:
  ``data/shop`` (a bgbias dataset folder: ``images/<class>/``, ``masks/``, ``splits.json``) and
  ``backgrounds/`` (a few photos). The page's paths are relative, so they resolve there.
* A block that imports an optional package (``timm``, not in ``.[dev]``) runs in a second test of
  its section, with all of the section's blocks, skipped where that package is not installed;
  the section's own test runs every other block.
* A ```diff block is not run: applied to the python block just above it, it must give the python
  block just below it exactly, changing at most ``MAX_CHANGED_LINES`` lines (a line replaced
  counts once: per hunk, the larger of lines added and lines removed).
* The README's ```python blocks run the same way, in one namespace.
* Sections that load real pretrained weights (``SLOW_SECTIONS``) are marked ``slow``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bgbias
from tests.helpers import write_folder_dataset

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "python-api.md"
MAX_CHANGED_LINES = 5
MAX_EXAMPLE_LINES = 40
OPTIONAL = ("timm",)  # packages a block may import that the dev install does not have
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Block:
    language: str
    code: str
    line: int  # where the block starts on the page, for failure messages


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def sections(text: str) -> list[Section]:
    """The page's ``## `` sections with their fenced blocks, in order (text before the first
    ``## `` heading is a section titled "")."""
    found = [Section("")]
    heading = re.compile(r"^## (.+)$", re.M)
    events = [(m.start(), "heading", m) for m in heading.finditer(text)]
    events += [(m.start(), "block", m) for m in FENCE.finditer(text)]
    for start, kind, match in sorted(events, key=lambda e: e[0]):
        if kind == "heading":
            # a "## " line inside a code block (a shell comment) is not a heading
            if not any(b.start() < start < b.end() for b in FENCE.finditer(text)):
                found.append(Section(match.group(1).strip()))
        else:
            line = text.count("\n", 0, start) + 1
            found[-1].blocks.append(Block(match.group(1), match.group(2), line))
    return [s for s in found if s.blocks]


def apply_diff(base: str, diff: str) -> tuple[str, int]:
    """``base`` with the unified ``diff`` applied at the line numbers of its hunks, and the
    number of changed lines. Fails (AssertionError) where a context or removed line differs."""
    old = base.splitlines()
    out: list[str] = []
    position = 0  # next line of ``old`` not yet copied
    changed = 0
    hunks = re.split(r"^(?=@@ )", diff, flags=re.M)
    assert len(hunks) > 1, "the diff has no @@ hunk"
    for hunk in hunks[1:]:
        header, *lines = hunk.splitlines()
        match = HUNK.match(header)
        assert match, f"not a hunk header: {header!r}"
        start, length = int(match.group(1)), int(match.group(2) or 1)
        new_length = int(match.group(4) or 1)
        first = start - 1 if length else start  # "-N,0" inserts after line N
        assert first >= position, f"{header}: hunks overlap or are out of order"
        out += old[position:first]
        position = first
        added = removed = kept = 0
        for line in lines:
            # an editor may strip the lone space of an empty context line
            sign, content = (line[0], line[1:]) if line else (" ", "")
            if sign == "+":
                out.append(content)
                added += 1
                continue
            assert sign in " -", f"{header}: a line neither ' ', '+' nor '-': {line!r}"
            assert position < len(old) and old[position] == content, (
                f"{header}: the diff has {line!r} where the code has "
                f"{old[position] if position < len(old) else '(the end)'!r}"
            )
            position += 1
            if sign == "-":
                removed += 1
            else:
                out.append(content)
                kept += 1
        assert (kept + removed, kept + added) == (length, new_length), (
            f"{header}: the hunk has {kept + removed} old and {kept + added} new lines"
        )
        changed += max(added, removed)
    out += old[position:]
    return "\n".join(out) + "\n", changed


def optional_imports(code: str) -> list[str]:
    """The optional packages (``OPTIONAL``) that ``code`` imports."""
    return [name for name in OPTIONAL if re.search(rf"^\s*(import|from) {name}\b", code, re.M)]


def write_backgrounds(folder: Path, count: int = 4, seed: int = 0) -> Path:
    """``count`` photo-like JPEGs of different sizes: smooth colour gradients with noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        height, width = rng.integers(80, 160, size=2)
        y, x = np.mgrid[0:height, 0:width]
        colour = rng.uniform(0, 255, size=(2, 3))
        t = ((x / width + y / height) / 2)[..., None]
        pixels = colour[0] * (1 - t) + colour[1] * t + rng.normal(0, 12, size=(height, width, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"photo{i}.jpg")
    return folder


def write_page_data(folder: Path) -> Path:
    """What docs/python-api.md reads, relative to its working directory: ``data/shop`` (8 train,
    2 val and 4 test classes of 8 images, with masks) and ``backgrounds/``."""
    classes = {f"product{i:02d}": 8 for i in range(14)}
    names = list(classes)
    splits = {"train": names[:8], "val": names[8:10], "test": names[10:]}
    write_folder_dataset(folder / "data" / "shop", classes, size=(72, 64), splits=splits)
    write_backgrounds(folder / "backgrounds")
    return folder


@contextlib.contextmanager
def working_directory(path: Path):
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_blocks(blocks: list[Block], where: Path, source: str, optional: bool = False) -> None:
    """Run the python blocks in one namespace in ``where``, checking each diff block against its
    neighbours; blocks importing an optional package run only if ``optional``."""
    namespace: dict = {"__name__": "__main__"}
    for i, block in enumerate(blocks):
        if block.language == "diff":
            before, after = blocks[i - 1 : i], blocks[i + 1 : i + 2]
            assert before and after and before[0].language == after[0].language == "python", (
                f"{source}:{block.line}: a diff block needs a python block above and below it"
            )
            before, after = before[0], after[0]
            patched, changed = apply_diff(before.code, block.code)
            assert patched == after.code, (
                f"{source}:{block.line}: the diff applied to line {before.line}'s block does not "
                f"give line {after.line}'s block:\n{patched}"
            )
            assert 0 < changed <= MAX_CHANGED_LINES, f"{source}:{block.line}: {changed} changes"
            continue
        if block.language != "python":
            continue
        if optional_imports(block.code) and not optional:
            continue
        code = compile(block.code, f"{source}:{block.line}", "exec")
        with working_directory(where):
            exec(code, namespace)  # noqa: S102 - the page's own code is what is tested


PAGE_SECTIONS = sections(PAGE.read_text()) if PAGE.is_file() else []
# sections loading real pretrained weights: ~15-40 s on a shared 2-core CPU (still run in CI)
SLOW_SECTIONS = ("audit",)


def example_params() -> list:
    """One test per section; a section with optional blocks gets a second one running them."""
    params = []
    for section in PAGE_SECTIONS:
        name = re.sub(r"\W+", "-", re.sub(r"^\(\w\) ", "", section.title).lower()).strip("-")
        marks = [pytest.mark.slow] if name.startswith(SLOW_SECTIONS) else []
        params.append(pytest.param(section, (), id=name, marks=marks))
        needs = sorted({n for b in section.blocks for n in optional_imports(b.code)})
        if needs:
            wide = f"{name}-with-{'-'.join(needs)}"
            params.append(pytest.param(section, tuple(needs), id=wide, marks=marks))
    return params


def test_python_api_page_has_the_three_examples():
    titles = [s.title for s in PAGE_SECTIONS]
    assert len(titles) >= 3, titles
    for section in PAGE_SECTIONS:
        for block in section.blocks:
            if block.language == "python":
                lines = len(block.code.splitlines())
                assert lines < MAX_EXAMPLE_LINES, f"{PAGE.name}:{block.line}: {lines} lines"
    assert sum(b.language == "diff" for s in PAGE_SECTIONS for b in s.blocks) == 1


@pytest.mark.parametrize(("section", "optional"), example_params())
def test_python_api_example_runs(section: Section, optional: tuple[str, ...], tmp_path: Path):
    for name in optional:
        pytest.importorskip(name, reason=f"{name} is not installed (pip install bgbias[{name}])")
    where = write_page_data(tmp_path)
    run_blocks(section.blocks, where, "docs/python-api.md", optional=bool(optional))


def test_readme_python_blocks_run(tmp_path: Path):
    blocks = [b for s in sections((REPO / "README.md").read_text()) for b in s.blocks]
    python = [b for b in blocks if b.language == "python"]
    assert python, "the README's Python API section has a snippet"
    run_blocks(python, write_page_data(tmp_path), "README.md")


def test_apply_diff_checks_context_line_numbers_and_counts():
    base = "a\nb\nc\nd\n"
    assert apply_diff(base, "@@ -2,2 +2,3 @@\n b\n-c\n+C\n+C2\n") == ("a\nb\nC\nC2\nd\n", 2)
    assert apply_diff(base, "@@ -0,0 +1 @@\n+top\n") == ("top\na\nb\nc\nd\n", 1)
    with pytest.raises(AssertionError, match="where the code has"):
        apply_diff(base, "@@ -2,2 +2,2 @@\n x\n-c\n+C\n")
    with pytest.raises(AssertionError, match="old and"):
        apply_diff(base, "@@ -2,3 +2,3 @@\n b\n-c\n+C\n")


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (.[dev])"
)
def test_site_builds_with_warnings_as_errors(tmp_path: Path):
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    site = tmp_path / "site"
    index = (site / "index.html").read_text()
    assert "BGAugment" in index and 'href="python-api.html"' in index  # the README, links fixed
    for page in ("python-api", "audit", "search", "reproducing", "reference/augment"):
        assert (site / f"{page}.html").is_file(), page
    reference = "".join(page.read_text() for page in (site / "reference").glob("*.html"))
    undocumented = [
        name
        for name in bgbias.__all__
        if name != "__version__" and f'id="bgbias.{name}"' not in reference
    ]
    assert not undocumented, f"public names missing from docs/reference/: {undocumented}"
