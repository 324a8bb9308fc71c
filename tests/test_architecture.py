"""The package layout draws the data path: rooms import only downstream, and no module cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import segment_braze

PACKAGE = Path(segment_braze.__file__).parent
ROOMS = ("_translate", "_cache", "_deliver", "_replay", "testing")
# Which rooms each room may never import (the data path runs one way).
FORBIDDEN = {
    "_translate": {"_deliver", "_cache", "_replay", "testing"},
    "_cache": {"_deliver", "_replay", "testing"},
    "_deliver": {"_replay", "testing"},
    "_replay": {"testing"},
    "testing": {"_translate", "_deliver", "_cache", "_replay"},
}
MAX_LINES = 460


def module_name(path: Path) -> str:
    """The dotted name of a module file inside the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str) -> set[str]:
    """The package modules that module ``name`` imports, anywhere in its body."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from segment_braze import _json` imports the module segment_braze._json.
            targets = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in MODULES)
    found.discard(name)
    return found


def room(name: str) -> str | None:
    """The room a module lives in, or None for the top level."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


class TestRooms:
    """Each room imports only what lies downstream of it on the data path."""

    def test_every_room_is_a_package_with_a_docstring(self):
        """Each room has an __init__ whose docstring says what it holds and may import."""
        for name in ROOMS:
            init = PACKAGE / name / "__init__.py"
            docstring = ast.get_docstring(ast.parse(init.read_text()))
            assert docstring, name
            assert "import" in docstring, name

    @pytest.mark.parametrize("name", sorted(MODULES))
    def test_imports_follow_the_data_path(self, name):
        """No module imports a room that lies upstream of its own."""
        own = room(name)
        if own is None:
            return
        against = {target for target in imported(name) if room(target) in FORBIDDEN[own]}
        assert against == set(), f"{name} imports {sorted(against)} against the flow"

    @pytest.mark.parametrize("name", sorted(MODULES))
    def test_translation_never_imports_the_package_root(self, name):
        """Pure modules never import segment_braze itself, which pulls in the sender."""
        if room(name) == "_translate":
            assert "segment_braze" not in imported(name)

    def test_top_level_holds_only_the_shared_modules(self):
        """Outside the rooms: entry points, exceptions, settings and endpoint rules, JSON."""
        top = {path.name for path in PACKAGE.glob("*.py")}
        assert top <= {
            "__init__.py",
            "__main__.py",
            "exceptions.py",
            "_settings.py",
            "_endpoints.py",
            "_json.py",
        }

    @pytest.mark.parametrize("name", sorted(MODULES))
    def test_modules_stay_small(self, name):
        """A module over a few hundred lines holds two concepts and should be split."""
        lines = MODULES[name].read_text().count("\n")
        assert lines <= MAX_LINES, f"{name} has {lines} lines"


class TestCycles:
    """No two modules of the package import each other, directly or through others."""

    def test_no_import_cycle(self):
        """The module import graph is acyclic (a depth-first search finds no back edge)."""
        graph = {name: imported(name) for name in MODULES}
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        cycles: list[list[str]] = []

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for target in sorted(graph[node]):
                if state.get(target) == 1:
                    cycles.append([*path[path.index(target) :], target])
                elif target not in state:
                    visit(target, [*path, target])
            state[node] = 2

        for name in sorted(graph):
            if name not in state:
                visit(name, [name])
        assert cycles == []

    def test_the_old_circles_are_broken(self):
        """The cache and its stores, and the client and its delivery run, no longer meet."""
        assert "segment_braze._cache.stores" in imported("segment_braze._cache.cache")
        assert "segment_braze._cache.cache" not in imported("segment_braze._cache.stores")
        assert "segment_braze._deliver.client" not in imported("segment_braze._deliver.delivery")
