"""The package's imports run one way: CLI -> tasks -> training -> models -> layers -> engine ->
cells, with data and checks below everything. Read from the source, so a lazy import inside a
function counts as much as one at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnnkit"

RANKS = {
    "checks": 0, "data": 0,
    "cells": 1,
    "engine": 2,
    "layers": 3, "catalog": 3, "": 3,  # "" is rnnkit/__init__.py, which re-exports the layers
    "diagnostics": 4, "models": 4, "export": 4,
    "training": 5,
    "tasks": 6, "experiments": 6, "inspection": 6,
    "cli": 7, "__main__": 7,
}
"""Each top-level module or package of rnnkit and its level: a module may import only modules
of its own level or below."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """The rnnkit modules a file imports, each with whether the import sits inside a
    function."""
    tree = ast.parse(path.read_text())
    found = []
    nested = {id(node) for function in ast.walk(tree)
              if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
              for node in ast.walk(function)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from rnnkit.a import b" imports the module rnnkit.a.b where there is one.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                     else node.module for alias in node.names]
        else:
            continue
        found.extend((name, id(node) in nested) for name in names
                     if name == "rnnkit" or name.startswith("rnnkit."))
    return found


GRAPH = {name: sorted({target for target, _ in _imports(path)} - {name})
         for name, path in MODULES.items()}


def _top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_top_level_module_has_a_level():
    assert {_top(name) for name in MODULES} <= set(RANKS)


def test_no_module_imports_a_higher_level():
    upward = [f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets
              if RANKS[_top(target)] > RANKS[_top(name)]]
    assert not upward


def test_no_import_cycle_between_modules():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert not cycles


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_rnnkit_import_inside_a_function(name):
    assert not [target for target, nested in _imports(MODULES[name]) if nested]
