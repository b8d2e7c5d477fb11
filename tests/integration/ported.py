"""Server tests on PostgreSQL while some modules are still SQLite-only.

A module whose code still asks for the SQLite engine (``ctx.sqlite()``) cannot start on
PostgreSQL. `ported_only` wraps a test's `config_factory` so that on PostgreSQL those
modules are left out of every host; as stores move over, the list shrinks by itself and
the tests run with more of the default modules, until `both_engines` alone does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from heron.config import DEFAULT_MODULES, ServerConfig
from heron.modules import AVAILABLE


@cache
def sqlite_only_modules() -> tuple[str, ...]:
    """The default modules whose source (their package's, for a package) still calls
    ``ctx.sqlite()``."""
    found = []
    for name in DEFAULT_MODULES:
        source = Path(importlib.import_module(AVAILABLE[name].__module__).__file__ or "")
        files = list(source.parent.glob("*.py")) if source.parent.name != "modules" else [source]
        if any(".sqlite()" in f.read_text(encoding="utf-8") for f in files):
            found.append(name)
    return tuple(found)


def ported_only(factory: Callable[..., ServerConfig], engine: str) -> Callable[..., ServerConfig]:
    """``factory`` as it is on SQLite; on PostgreSQL, without the SQLite-only modules."""
    if engine == "sqlite":
        return factory
    left_out = sqlite_only_modules()

    def make(**overrides: object) -> ServerConfig:
        hosts = overrides.pop("hosts", None) or {"localhost": {}}
        assert isinstance(hosts, Mapping)
        adjusted: dict[str, object] = {}
        for domain, host in hosts.items():
            table = dict(host)
            modules = table.get("modules", {})
            if isinstance(modules, Mapping):  # the defaults, adjusted: leave out the rest
                table["modules"] = {**dict.fromkeys(left_out, False), **modules}
            else:
                table["modules"] = [m for m in modules if m not in left_out]
            adjusted[domain] = table
        return factory(hosts=adjusted, **overrides)

    return make
