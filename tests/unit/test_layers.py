"""Imports point one way: xmlstream ← stanza ← stream ← core ← modules, with the transports
above the core and only the wiring above them (docs/architecture.md, "The layers")."""

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
    "heron.log",
}
# The wiring: builds the server and its listeners from the config; nothing else imports it.
WIRING = {
    "heron.app",
    "heron.cli",
    "heron.__main__",
    "heron.features",
    "heron.tls",
    "heron.ops",
    "heron.supervisor",
}


def is_wiring(module: str) -> bool:
    return module in WIRING or layer_of(module) in WIRING


ALLOWED: dict[str, set[str]] = {
    "heron.xmlstream": {"heron.xmlstream"},
    "heron.stanza": {"heron.xmlstream", "heron.stanza"},
    "heron.stream": {"heron.xmlstream", "heron.stanza", "heron.stream"},
    "heron.storage": {"heron.storage"},
    # the configuration: frozen values, and the parser limits they configure
    "heron.config": {"heron.xmlstream", "heron.config"},
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
    # asyncio adapters: sockets and HTTP in, a stream engine and the core's services out
    "heron.transport": {
        "heron.xmlstream",
        "heron.stanza",
        "heron.stream",
        "heron.core",
        "heron.config",
        "heron.transport",
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


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_part_of_heron_has_a_rule() -> None:
    """A new package or top-level file must be placed in the layers, not slip past them."""
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        known = name in LEAVES or is_wiring(name) or layer_of(name) in ALLOWED
        assert known, f"{name} is in no layer: add it to LEAVES, WIRING or ALLOWED"


def test_leaves_import_only_leaves() -> None:
    for leaf in LEAVES - {"heron"}:
        path = PACKAGE / f"{leaf.split('.')[1]}.py"
        for imported in heron_imports(path):
            assert imported in LEAVES, f"{path.name} imports {imported}"


def test_only_the_wiring_imports_the_wiring() -> None:
    for path in PACKAGE.rglob("*.py"):
        if is_wiring(module_name(path)):
            continue
        for imported in heron_imports(path):
            assert not is_wiring(imported), f"{path.relative_to(PACKAGE)} imports {imported}"


def test_a_module_never_imports_another_module() -> None:
    """A module (one file, or a package such as muc/) imports only its own parts."""
    for path in (PACKAGE / "modules").rglob("*.py"):
        if path.parent == PACKAGE / "modules" and path.name == "__init__.py":
            continue  # the list of available modules
        own = ".".join(module_name(path).split(".")[:3])
        for imported in heron_imports(path):
            foreign = imported != own and not imported.startswith(own + ".")
            if imported.startswith("heron.modules") and foreign:
                pytest.fail(f"{path.relative_to(PACKAGE)} imports {imported}")


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
