"""Griffe extension for the API reference: the docstrings are plain text with ``code`` and
Sphinx roles, read here as Markdown.

* A role (``:class:`X```, ``:func:`~a.b.f```) naming a public name (``bgbias.__all__``, by its
  public or its defining path) links to its reference entry; any other becomes code, since a
  link to an undocumented object would fail the strict build.
* A placeholder outside code (``ROOT/<class>/<image>``) is text, not an HTML tag that the
  browser would hide.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):`(~?)([\w.]+)`")
CODE = re.compile(r"(`+).*?\1", re.S)  # a code span, ``x`` or `x`
PLACEHOLDER = re.compile(r"<([A-Za-z_][\w .-]*)>")  # no ':' or '/': not an autolink
INIT = Path(__file__).resolve().parents[2] / "src" / "bgbias" / "__init__.py"


def public_names() -> dict[str, str]:
    """Every spelling of a public name (``X``, ``bgbias.X``, ``bgbias.module.X``) -> ``bgbias.X``,
    from ``_EXPORTS`` in bgbias/__init__.py (read, not imported)."""
    tree = ast.parse(INIT.read_text())
    exports = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)
    )
    names = {}
    for name, module in exports.items():
        for spelling in (name, f"bgbias.{name}", f"{module}.{name}"):
            names[spelling] = f"bgbias.{name}"
    return names


class SphinxRoles(griffe.Extension):
    def __init__(self) -> None:
        super().__init__()
        self.public = public_names()

    def _markdown(self, match: re.Match) -> str:
        short, target = match.groups()
        shown = target.rsplit(".", 1)[-1] if short else target
        public = self.public.get(target)
        return f"[`{shown}`][{public}]" if public else f"`{shown}`"

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = escape_placeholders(ROLE.sub(self._markdown, obj.docstring.value))


def escape_placeholders(text: str) -> str:
    """``<name>`` outside code spans as ``&lt;name&gt;``."""
    out, position = [], 0
    for code in CODE.finditer(text):
        out += [PLACEHOLDER.sub(r"&lt;\1&gt;", text[position : code.start()]), code.group()]
        position = code.end()
    return "".join(out + [PLACEHOLDER.sub(r"&lt;\1&gt;", text[position:])])
