"""Imports point one way: xmlstream ← stanza ← stream ← core ← modules (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "heron"

LEAVES = {
    "heron",
    "heron.ns",
    "heron.jid",
    "heron.credentials",
    "heron.ratelimit",
    "heron.timestamps",
}
ALLOWED: dict[str, set[str]] = {
    "heron.xmlstream": {"heron.xmlstream"},
    "heron.stanza": {"heron.xmlstream", "heron.stanza"},
    "heron.stream": {"heron.xmlstream", "heron.stanza", "heron.stream"},
    "heron.storage": {"heron.storage"},
    "heron.core": {
        "heron.xmlstream",
        "heron.stanza",
        "heron.stream",
        "heron.core",
        "heron.storage",
        "heron.config",
    },
    # the cluster layer: the registry and bus beside the core, wired by heron.app
    "heron.cluster": {
        "heron.xmlstream",
        "heron.stanza",
        "heron.core",
        "heron.config",
        "heron.cluster",
    },
    "heron.modules": {
        "heron.xmlstream",
        "heron.stanza",
        "heron.core",
        "heron.config",
        "heron.storage",  # a module's own store uses the storage engines
        "heron.modules",
    },
}


def heron_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("heron"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("heron"))
    return found


def layer_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_point_one_way(layer: str) -> None:
    folder = PACKAGE / layer.split(".")[1]
    for path in folder.rglob("*.py"):
        for imported in heron_imports(path):
            if imported in LEAVES:
                continue
            assert layer_of(imported) in ALLOWED[layer], f"{path.name} imports {imported}"


def test_a_module_never_imports_another_module() -> None:
    """A file of a module package (``modules/muc/*.py``) may import its own package only."""
    modules = PACKAGE / "modules"
    for path in modules.rglob("*.py"):
        if path.parent == modules and path.name == "__init__.py":
            continue
        own = f"heron.modules.{path.relative_to(modules).parts[0].removesuffix('.py')}"
        for imported in heron_imports(path):
            if imported.startswith("heron.modules") and layer_of_module(imported) != own:
                pytest.fail(f"{path.relative_to(PACKAGE)} imports {imported}")


def layer_of_module(module: str) -> str:
    """``heron.modules.muc.room`` → ``heron.modules.muc``."""
    return ".".join(module.split(".")[:3])


def test_modules_never_reach_for_the_server() -> None:
    """Modules see the server only through their ModuleContext's services."""
    for path in (PACKAGE / "modules").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "ctx.server" not in text, f"{path.relative_to(PACKAGE)} reaches ctx.server"
        assert "heron.core.server" not in text, f"{path.relative_to(PACKAGE)} imports the server"


def test_modules_never_touch_a_database_driver() -> None:
    """Modules reach storage through their stores (written against Database), never an
    engine or a driver (issue 16), on whichever engine the server runs."""
    engines = {"sqlite3", "asyncpg", "heron.storage.sqlite", "heron.storage.postgres"}
    for path in (PACKAGE / "modules").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name not in engines, f"{path.relative_to(PACKAGE)} imports {name}"
