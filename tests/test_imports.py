"""No import cycles among the modules of bgbias: its layers import one way.

The rule, in two parts, each its own test:

1. Import time. An import counts when it runs while its module is being imported: a statement
   of the module body, including those under a module-level ``if``/``try``/``with`` and in
   class bodies. A cycle of these breaks import order (a module sees a half-initialised one)
   and always fails the test.
2. Deferred imports. Imports inside functions run after every module has loaded, so a cycle
   that closes only through them cannot break an import; it is still the same knot (two
   modules that need each other belong together, or need a third one under both), and
   moving the deferred import to the top turns it into (1). bgbias has none, so this test
   keeps it that way; where a module must look up at run time, a registry's ``providers``
   (module names, imported on first lookup) say so without an import statement.

Imports under ``if TYPE_CHECKING:`` never run and never count. Importing ``a.b.c`` also
imports the packages ``a`` and ``a.b``, which count too, except the importer's own packages
(always initialised before it).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "bgbias"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules(src: Path = SRC) -> dict[str, Path]:
    return {module_name(p, src): p for p in sorted((src / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_statements(body: list[ast.stmt], deferred: bool = False):
    """The import statements of ``body`` that run when it runs (see the module docstring);
    with ``deferred``, those inside functions too."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from import_statements(node.orelse, deferred)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not deferred:
            continue
        else:  # compound statements (if, try, with, for, class, def...) and their blocks
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    yield from import_statements(block, deferred)


def _with_packages(target: str, importer: str, modules: dict[str, Path]) -> set[str]:
    """``target`` and its parent packages, less the importer's own (already initialising)."""
    own = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)}
    if modules[importer].name == "__init__.py":
        own.add(importer)
    parts = target.split(".")
    chain = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {m for m in chain if m in modules and m not in own and m != importer}


def import_edges(modules: dict[str, Path], deferred: bool = False) -> dict[str, set[str]]:
    """module -> the bgbias modules its import runs (with ``deferred``: or its functions)."""
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        for node in import_statements(tree.body, deferred):
            if isinstance(node, ast.Import):
                bases = [alias.name for alias in node.names]
            else:
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import sub` imports the submodule pkg.sub when there is one
                bases = [base] + [
                    f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules
                ]
            for base in bases:
                if base == PACKAGE or base.startswith(PACKAGE + "."):
                    targets |= _with_packages(base, name, modules)
        edges[name] = targets
    return edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_a_cycle_through(component, edges) for component in components]


def _a_cycle_through(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, for the message."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(edges[node] & members):
                if succ == start:
                    return paths[node] + [start]
                if succ not in paths:
                    paths[succ] = paths[node] + [succ]
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no cycle in component {component}")


def test_no_import_cycles_at_import_time():
    cycles = find_cycles(import_edges(all_modules()))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_cycles_through_deferred_imports():
    cycles = find_cycles(import_edges(all_modules(), deferred=True))
    assert not cycles, "cycles through function-level imports:\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


def test_the_cycle_finder_names_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_import_time_edges_follow_the_rule(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    (package / "sub" / "leaf.py").write_text("from .. import top\n")
    (package / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .other import X\n"
        "try:\n    from .sub import leaf\nexcept ImportError:\n    pass\n"
        "def later():\n    from . import other\n"
    )
    (package / "other.py").write_text("")
    edges = import_edges(all_modules(tmp_path))
    assert edges[f"{PACKAGE}.top"] == {f"{PACKAGE}.sub", f"{PACKAGE}.sub.leaf"}
    assert edges[f"{PACKAGE}.sub"] == {f"{PACKAGE}.sub.leaf"}
    assert edges[f"{PACKAGE}.sub.leaf"] == {f"{PACKAGE}.top"}
    assert find_cycles(edges) == [[f"{PACKAGE}.{m}" for m in ("sub", "sub.leaf", "top", "sub")]]
    deferred = import_edges(all_modules(tmp_path), deferred=True)
    assert deferred[f"{PACKAGE}.top"] == edges[f"{PACKAGE}.top"] | {f"{PACKAGE}.other"}


VAGUE_MODULE_NAMES = {"compare", "utils", "util", "misc", "helpers", "stuff"}


def test_module_names_say_what_they_do():
    """A module named for a verb any module could claim (two unrelated ``compare.py`` once)
    tells a reader nothing; each says what it holds."""
    vague = [name for name in all_modules() if name.rsplit(".", 1)[-1] in VAGUE_MODULE_NAMES]
    assert vague == []
