"""A griffe extension that lets mkdocstrings render rnnkit's reStructuredText docstrings.

rnnkit's docstrings are written to read well in ``help()``: Google-style sections (``Args:``,
``Returns:``), ``.. math::`` blocks and ``:math:`` roles for the equations, ``:class:`` /
``:func:`` / ... roles for cross-references and ``Example::`` literal blocks. mkdocstrings
renders docstrings as Markdown, so before it parses them this extension rewrites, in the
documentation build only (the source is not touched):

* ``.. math::`` blocks into ``$$ ... $$`` blocks (``aligned`` when they use ``&`` or ``\\``)
  and ``:math:`x``` into ``$x$``, which ``pymdownx.arithmatex`` hands to MathJax;
* ``:class:`X``` and the other roles into optional cross-references: a link where ``X`` is
  documented in the API reference, plain code otherwise (never a build warning, since the
  docstrings may name private helpers);
* ``Example::`` blocks of doctest lines into a Google ``Examples:`` section, other ``::``
  literal blocks into fenced code blocks;
* a ``*`` between two words or numbers (``L*D``, ``2*H``) outside code and maths into an
  escaped one, a product rather than the start of an emphasis;
* class docstrings assembled at import time (``__doc__ = "..." + EQUATIONS``), which static
  analysis cannot see, into the docstring the running class has.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|obj|exc|const):`(?P<target>[^`]+)`")
MATH_ROLE = re.compile(r":math:`(?P<tex>[^`]+)`")
LITERAL_LINE = re.compile(r"^(?P<indent>\s*)(?P<text>.*?)::\s*$")
CODE_OR_MATH = re.compile(r"(``.+?``|`[^`]+`|\$[^$]+\$|<autoref .*?</autoref>)")
PRODUCT_STAR = re.compile(r"(?<=[\w)])\*(?=[\w(])")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The lines after ``start`` indented deeper than ``base`` (blank lines inside kept);
    returns them and the index of the first line after the block."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end], end


def _math_block(body: list[str], indent: str) -> list[str]:
    tex = textwrap.dedent("\n".join(body)).strip()
    if "&" in tex or "\\\\" in tex:
        tex = "\\begin{aligned}\n" + tex + "\n\\end{aligned}"
    return ["", indent + "$$"] + [indent + line for line in tex.splitlines()] + [indent + "$$", ""]


def convert_blocks(text: str) -> str:
    """``.. math::`` and ``::`` literal blocks of a docstring in Markdown form."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        base = _indent(line)
        if stripped.startswith(".. math::"):
            first = stripped[len(".. math::"):].strip()
            body, i = _block(lines, i + 1, base)
            out += _math_block(([first] if first else []) + body, " " * base)
            continue
        literal = LITERAL_LINE.match(line)
        if literal and not stripped.startswith(".."):
            body, end = _block(lines, i + 1, base)
            if any(b.strip() for b in body):
                code = textwrap.dedent("\n".join(body)).strip("\n").splitlines()
                title = literal["text"].rstrip()
                pad = " " * base
                if title in ("Example", "Examples") and code[0].startswith(">>>"):
                    out += [pad + "Examples:"] + [pad + "    " + c for c in code]
                else:
                    if title:
                        out.append(pad + title + ":")
                    language = "python" if code[0].startswith((">>>", "from ", "import ")) \
                        else "text"
                    out += ["", pad + "```" + language] + [pad + c for c in code] + [pad + "```"]
                i = end
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def escape_products(text: str) -> str:
    """``a*b`` outside code spans, maths, doctest lines and fenced blocks as ``a\\*b``."""
    out, fenced = [], False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("```") or stripped == "$$":
            fenced = not fenced
        elif not fenced and "*" in line and not stripped.startswith((">>>", "...")):
            parts = CODE_OR_MATH.split(line)
            line = "".join(part if i % 2 else PRODUCT_STAR.sub(r"\\*", part)
                           for i, part in enumerate(parts))
        out.append(line)
    return "\n".join(out)


class RstDocstrings(griffe.Extension):
    """Rewrite every docstring of the loaded package once, after loading (see the module
    docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._done: set[int] = set()

    # griffe >= 1.14 calls on_package; earlier versions on_package_loaded.
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._convert_tree(pkg)

    def on_package_loaded(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._convert_tree(pkg)

    def _convert_tree(self, root: griffe.Object) -> None:
        if id(root) in self._done:
            return
        self._done.add(id(root))
        stack: list[griffe.Object] = [root]
        while stack:
            obj = stack.pop()
            if obj.is_class and obj.docstring is None:
                self._runtime_docstring(obj)
            if obj.docstring is not None:
                obj.docstring.value = self._convert(obj.docstring.value, obj)
            for member in obj.members.values():
                if not member.is_alias:
                    stack.append(member)

    @staticmethod
    def _runtime_docstring(cls: griffe.Object) -> None:
        """A docstring assembled at import time (``__doc__ = A + B``), read from the class."""
        package_file = cls.package.filepath
        if isinstance(package_file, Path):  # importable also from a checkout not installed
            root = str(package_file.parent.parent)
            if root not in sys.path:
                sys.path.append(root)
        try:
            value = getattr(importlib.import_module(cls.module.path), cls.name)
        except Exception:  # noqa: BLE001 -- a class that cannot be imported keeps no docstring
            return
        doc = value.__dict__.get("__doc__") if isinstance(value, type) else None
        if doc:
            cls.docstring = griffe.Docstring(inspect.cleandoc(doc), parent=cls)

    def _convert(self, text: str, obj: griffe.Object) -> str:
        text = convert_blocks(text)
        text = MATH_ROLE.sub(lambda m: "$" + m["tex"].strip() + "$", text)
        text = ROLE.sub(lambda m: self._reference(m["target"], obj), text)
        return escape_products(text)

    def _reference(self, target: str, obj: griffe.Object) -> str:
        short = target.startswith("~")
        target = target.lstrip("~").rstrip("()")
        shown = target.rsplit(".", 1)[-1] if short else target
        path = _resolve(target, obj) or target
        return (f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>')


def _lookup(path: str, anchor: griffe.Object) -> griffe.Object | None:
    root = anchor.package
    if path == root.path:
        return root
    if not path.startswith(root.path + "."):
        return None
    try:
        return root.get_member(path[len(root.path) + 1:])
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _resolve(target: str, obj: griffe.Object) -> str | None:
    """The full path ``target`` names, seen from ``obj``: its members, its enclosing scopes,
    their imports, then the package root; ``None`` if none of them has it."""
    first, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        candidates = [f"{scope.path}.{target}"]
        if scope.is_module and first in scope.imports:
            candidates.append(scope.imports[first] + (f".{rest}" if rest else ""))
        for candidate in candidates:
            found = _lookup(candidate, obj)
            if found is not None:
                return _canonical(found, candidate)
        scope = scope.parent
    for candidate in (target, f"{obj.package.path}.{target}"):
        found = _lookup(candidate, obj)
        if found is not None:
            return _canonical(found, candidate)
    return None


def _canonical(found: griffe.Object, path: str) -> str:
    try:
        return found.final_target.path if found.is_alias else found.path
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return path
