"""Every ``bgbias`` command that README.md and docs/ show still exists, with every option it
uses: a renamed command or flag fails here, not in a reader's terminal.

Commands are taken from the pages' ```bash / ```console blocks (prompts, ``\\`` continuations,
``&&`` / ``;`` / ``|`` chains and ``#`` comments understood) and from inline code spans that start
with ``bgbias`` (usage like ``[--from DIR]`` or ``list|fetch`` understood). Each one's command
words must name a subcommand, each ``--flag`` must be in that subcommand's ``--help``, and the
``--help`` itself must exit 0: in this process (the parser imports no torch), and once per
command through ``python -m bgbias`` in the slow test.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache

import pytest

from bgbias.cli import main
from tests.helpers import REPO, command_parsers

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(?:bash|console|sh|shell)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
INLINE = re.compile(r"(?<!`)`((?:python -m )?bgbias(?: [^`]*)?)`(?!`)")
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}


@dataclass(frozen=True)
class Shown:
    """A bgbias command as a page shows it: the words after ``bgbias``, and where."""

    where: str  # page:line
    tokens: tuple[str, ...]


def _after_bgbias(tokens: list[str]) -> tuple[str, ...] | None:
    """The arguments of the ``bgbias`` (or ``python -m bgbias``) call in one simple command."""
    for i, token in enumerate(tokens):
        if token == "bgbias":
            return tuple(tokens[i + 1 :])
        if token == "-m" and tokens[i + 1 : i + 2] == ["bgbias"]:
            return tuple(tokens[i + 2 :])
    return None


def block_commands(text: str, page: str, first_line: int) -> list[Shown]:
    """The bgbias calls of a shell block starting at ``first_line`` of ``page``."""
    found, pending, start = [], "", first_line
    for number, line in enumerate(text.splitlines(), start=first_line):
        if not pending:
            start = number
            line = re.sub(r"^\s*\$ ", "", line)  # a console prompt
        if line.rstrip().endswith("\\"):  # continued on the next line
            pending += line.rstrip()[:-1] + " "
            continue
        lexer = shlex.shlex(pending + line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        pending, command = "", []
        for token in [*lexer, ";"]:
            if token not in SEPARATORS:
                command.append(token)
                continue
            arguments = _after_bgbias(command)
            if arguments is not None:
                found.append(Shown(f"{page}:{start}", arguments))
            command = []
    return found


def inline_commands(text: str, page: str) -> list[Shown]:
    """The bgbias calls of inline code spans: usage brackets dropped, ``a|b`` alternatives each."""
    found = []
    for match in INLINE.finditer(text):
        where = f"{page}:{text.count(chr(10), 0, match.start()) + 1}"
        for part in re.split(r"\s+\|\s+", match.group(1))[:1]:  # `... | head -1`: bgbias's part
            tokens = re.sub(r"[\[\]]", " ", part).split()
            alternatives = [[]]
            for token in tokens:
                options = [t for t in token.split("|") if t] if "|" in token else [token]
                alternatives = [a + [option] for a in alternatives for option in options]
            found += [Shown(where, _after_bgbias(a)) for a in alternatives]
    return found


def shown_commands() -> list[Shown]:
    found = []
    for path in PAGES:
        text, page = path.read_text(), str(path.relative_to(REPO))
        for block in SHELL_BLOCK.finditer(text):
            first = text.count("\n", 0, block.start(1)) + 1
            found += block_commands(block.group(1), page, first)
        found += inline_commands(text, page)
    return found


def is_placeholder(word: str) -> bool:
    """``<stage command>``, ``{name}``, ``...``: a page's stand-in, not a command word."""
    return word.startswith(("<", "{", ".", "…")) or word.isupper()


@dataclass
class Resolved:
    words: tuple[str, ...]  # the subcommand: ("data", "split")
    flags: list[str]
    problem: str = ""


def resolve(tokens: tuple[str, ...]) -> Resolved:
    """The subcommand the tokens name and the long options they use."""
    parsers = command_parsers_cached()
    words: list[str] = []
    flags: list[str] = []
    choosing = True  # still reading command words
    for token in tokens:
        if token.startswith("-"):
            if token.startswith("--"):
                flags.append(token.split("=", 1)[0])
            continue
        if not choosing:
            continue
        children = {w[-1] for w in parsers if len(w) == len(words) + 1 and w[:-1] == tuple(words)}
        if token in children:
            words.append(token)
        elif children and not is_placeholder(token):
            commands = ", ".join(sorted(children))
            return Resolved(tuple(words), flags, f"{token!r} is not a command ({commands})")
        else:
            choosing = False
    return Resolved(tuple(words), flags)


@cache
def command_parsers_cached():
    return command_parsers()


@cache
def help_text(words: tuple[str, ...]) -> str:
    """``bgbias WORDS --help``, run in this process; fails unless it exits 0."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main([*words, "--help"])
    assert exit_.value.code in (0, None), f"bgbias {' '.join(words)} --help: exit {exit_.value}"
    return out.getvalue()


def flag_in_help(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def check(shown: Shown) -> None:
    command = f"{shown.where}: bgbias {' '.join(shown.tokens)}"
    resolved = resolve(shown.tokens)
    assert not resolved.problem, f"{command}: {resolved.problem}"
    text = help_text(resolved.words)
    missing = [flag for flag in resolved.flags if not flag_in_help(flag, text)]
    assert not missing, f"{command}: `bgbias {' '.join(resolved.words)} --help` has no {missing}"


SHOWN = shown_commands()


def test_the_pages_show_commands_of_every_kind():
    blocks = [s for s in SHOWN if s.where.startswith("README.md")]
    assert len(SHOWN) > 60 and len(blocks) > 10
    assert {resolve(s.tokens).words[:1] for s in SHOWN} >= {
        ("demo",),
        ("audit",),
        ("train",),
        ("index",),
        ("serve",),
        ("reproduce",),
    }
    # a continued line and a chained command are read whole: the README's audit of the demo
    # names its second checkpoint and the benchmark on the line after `bgbias audit`
    (audit,) = [s for s in SHOWN if s.tokens[-2:] == ("--out", "audit")]
    assert audit.where.startswith("README.md:") and audit.tokens[0] == "audit"
    assert "bgbias-demo/benchmark" in audit.tokens
    assert any(s.tokens == ("mask-weights", "fetch", "u2netp") for s in SHOWN)


@pytest.mark.parametrize("shown", SHOWN, ids=[f"{s.where}:{' '.join(s.tokens)}" for s in SHOWN])
def test_shown_command_exists_with_its_flags(shown: Shown):
    check(shown)


def test_a_renamed_flag_or_command_fails():
    page = "```bash\n$ bgbias demo --out d \\\n    --epochs 2 && bgbias data split x --test 0.2\n"
    page += "```\n"
    (block,) = SHELL_BLOCK.finditer(page)
    demo, split = block_commands(block.group(1), "page.md", 2)
    assert demo == Shown("page.md:2", ("demo", "--out", "d", "--epochs", "2"))
    check(demo)
    check(split)
    with pytest.raises(AssertionError, match=r"has no \['--epoch'\]"):
        check(Shown("page.md:2", ("demo", "--out", "d", "--epoch", "2")))
    with pytest.raises(AssertionError, match="'splitt' is not a command"):
        check(Shown("page.md:3", ("data", "splitt", "x")))
    (usage,) = inline_commands("see `bgbias evaluate CKPT [--repeat 5]`", "page.md")
    with pytest.raises(AssertionError, match=r"has no \['--repeat'\]"):
        check(usage)


@pytest.mark.slow
def test_every_shown_command_answers_help_through_python_m_bgbias():
    """The real entry point, once per command the pages use: the subcommand's module imports."""
    for words in sorted({resolve(s.tokens).words for s in SHOWN}):
        done = subprocess.run(
            [sys.executable, "-m", "bgbias", *words, "--help"], capture_output=True, text=True
        )
        assert done.returncode == 0, f"bgbias {' '.join(words)} --help: {done.stderr[-2000:]}"
        assert done.stdout.startswith(f"usage: bgbias {' '.join(words)}".rstrip())
