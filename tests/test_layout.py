"""The house keeps its shape (#26): no import circle, no import from a lower layer to a higher one, small rooms.

Imports are read from the source (also those inside functions), so a lazy import that runs back up counts too.
"""
from __future__ import annotations

import ast
import os

import pytest

from tests.conftest import REPO

PACKAGES = ("core", "plugin", "ui")
# core's layers, lowest first: a module may import its own layer and those below it
CORE_LAYERS = [
    {"core.errors", "core.version", "core.geometry", "core.progress", "core.config", "core.budget",
     "core.dependencies"},
    {"core.io"},
    {"core.models"},
    {"core.engine", "core.data"},
    {"core.tasks"},
    {"core"},  # the package face: the public API
]
MAX_LINES = 700


def modules() -> dict[str, str]:
    """Dotted module name (without "patchwork.") -> file path, for every module of core/, plugin/ and ui/."""
    found = {}
    for package in PACKAGES:
        for folder, _dirs, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    found[dotted[: -len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


def imports_of(name: str, path: str, known: set[str]) -> set[str]:
    """The project modules `name` imports, at any depth of its code."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("patchwork."):
                target = node.module[len("patchwork."):]
            else:
                continue
            for alias in node.names:  # "from . import x" names a module
                candidate = f"{target}.{alias.name}" if target else alias.name
                out.add(candidate if candidate in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name[len("patchwork."):] for a in node.names if a.name.startswith("patchwork."))
    return {m for m in out if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_no_import_circle(graph):
    def cycle_from(start):
        stack, path, seen = [(start, iter(sorted(graph[start])))], [start], set()
        while stack:
            node, children = stack[-1]
            for child in children:
                if child == start:
                    return path + [start]
                if child not in seen and child not in path:
                    seen.add(child)
                    stack.append((child, iter(sorted(graph[child]))))
                    path.append(child)
                    break
            else:
                stack.pop()
                path.pop()
        return None

    circles = [c for c in (cycle_from(m) for m in sorted(graph)) if c]
    assert not circles, circles[0]


def layer_of(module: str) -> int:
    for index, layer in enumerate(CORE_LAYERS):
        if module in layer or any(module.startswith(prefix + ".") for prefix in layer if prefix != "core"):
            return index
    raise AssertionError(f"{module} is in no layer of core/: add it to CORE_LAYERS")


def test_core_imports_only_its_own_layer_and_those_below(graph):
    upward = [(m, t) for m, targets in graph.items() if m.startswith("core") for t in targets
              if layer_of(t) > layer_of(m)]
    assert not upward, upward


def test_the_core_knows_no_qgis_and_the_panels_tabs_never_import_the_panel(graph):
    assert not [(m, t) for m, targets in graph.items() if m.startswith("core") for t in targets
                if not t.startswith("core")]
    assert not [(m, t) for m, targets in graph.items() if m.startswith("plugin") for t in targets
                if t.startswith("ui")]
    assert not [m for m, targets in graph.items() if m.startswith("ui.tabs") and "ui.dock" in targets]


def test_no_room_in_core_or_plugin_is_over_700_lines():
    sizes = {name: sum(1 for _ in open(path, encoding="utf-8")) for name, path in modules().items()
             if name.split(".")[0] in ("core", "plugin")}
    assert not {name: n for name, n in sizes.items() if n > MAX_LINES}
