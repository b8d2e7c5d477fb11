"""A module is one declarative file: options with bounds, a stream feature, a nonza, a
service domain, an HTTP route and a gauge, all applied on load and withdrawn on unload
without a stop() of its own."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from heron.config import ConfigError, option
from heron.core.accounts import AccountService
from heron.core.module import (
    Module,
    ModuleContext,
    ModuleManager,
    Xep,
    iq_handler,
    nonza,
    stream_feature,
)
from heron.core.registry import HostRegistry, Target
from heron.core.sessions import Session
from heron.stanza import Stanza
from heron.storage.accounts import MemoryAccountStore
from heron.storage.sqlite import SqliteDatabase
from heron.xmlstream.element import Element
from tests.modulecore import FakeDomains, make_core

DOMAIN = "example.org"
ECHO = "urn:example:echo"


@dataclass(frozen=True, slots=True)
class EchoOptions:
    max_bytes: int = option(4096, min=1, max=65536)
    mode: str = option("loud", choices=("loud", "quiet"))
    timeout_s: float = option(30.0, above=0)


class EchoModule(Module):
    name = "echo"
    xeps = (Xep(9999, "1.0", "complete"),)
    disco_features = (ECHO,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(EchoOptions)
        self.service = f"echo.{ctx.domain}"

    async def start(self) -> None:
        self.ctx.add_service(self.service)
        self.ctx.add_item(self.service, "Echo")
        self.ctx.add_http_route("GET", "/echo", self.http)
        self.ctx.add_gauge("heron_echo", "Echoes", lambda: [({}, 1.0)])

    @stream_feature("postauth")
    def feature(self) -> Element:
        return Element("echo", ECHO)

    @nonza(ECHO)
    async def on_nonza(self, session: Session, el: Element) -> None:
        return None

    @iq_handler("get", ECHO, Target.HOST)
    async def on_echo(self, iq: Stanza) -> Element | None:
        return None

    async def http(self, request: Any) -> Any:
        return None


class NeedsEcho(Module):
    name = "needs-echo"
    requires = ("echo",)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[tuple[ModuleManager, FakeDomains, Any]]:
    db = await SqliteDatabase.open(tmp_path / "heron.db")
    registry = HostRegistry(DOMAIN)
    registries = {DOMAIN: registry}
    accounts = AccountService(MemoryAccountStore(), secret=b"x" * 32, iterations=4096)
    core = make_core(db, accounts, registries)
    try:
        yield ModuleManager(registry), core.domains, core  # type: ignore[misc]
    finally:
        await db.close()


def context(core: Any, manager: ModuleManager, name: str, options: Mapping[str, object]) -> Any:
    return ModuleContext(
        core=core,
        domain=DOMAIN,
        registry=manager.registry,
        options=options,
        log=logging.LoggerAdapter(logging.getLogger("test"), {}),
        name=name,
    )


async def test_everything_declared_is_applied_and_withdrawn(host: Any) -> None:
    manager, domains, core = host
    reg = manager.registry
    module = await manager.load(EchoModule, context(core, manager, "echo", {"max_bytes": 10}))
    assert module.options == EchoOptions(max_bytes=10)  # type: ignore[attr-defined]
    assert [f() for f in reg.postauth_features] == [Element("echo", ECHO)]
    assert ECHO in reg.nonzas
    assert reg.find_iq_handler("get", ECHO, Target.HOST) is not None
    assert ECHO in reg.features
    assert "echo.example.org" in domains.registries
    assert reg.items["echo.example.org"] == "Echo"
    assert [r[:2] for r in domains.http_routes] == [("GET", "/echo")]
    assert "heron_echo" in core.metrics.render()

    await manager.unload("echo")
    assert reg.postauth_features == []
    assert ECHO not in reg.nonzas
    assert reg.find_iq_handler("get", ECHO, Target.HOST) is None
    assert ECHO not in reg.features
    assert "echo.example.org" not in domains.registries
    assert "echo.example.org" not in reg.items
    assert domains.http_routes == []
    assert "heron_echo" not in core.metrics.render()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"max_bytes": 0}, "modules.echo.max_bytes: must be between 1 and 65536"),
        ({"max_bytes": 70000}, "modules.echo.max_bytes: must be between 1 and 65536"),
        ({"mode": "shouty"}, "modules.echo.mode: one of loud, quiet"),
        ({"timeout_s": 0.0}, "modules.echo.timeout_s: must be > 0"),
        ({"max_bytes": "ten"}, "modules.echo.max_bytes"),
        ({"volume": 3}, "modules.echo.volume: unknown key"),
    ],
)
async def test_option_bounds_are_checked_naming_the_key(
    host: Any, options: dict[str, object], says: str
) -> None:
    manager, _domains, core = host
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
        await manager.load(EchoModule, context(core, manager, "echo", options))
    assert manager.registry.postauth_features == []  # nothing half-applied


async def test_a_missing_required_module_is_named(host: Any) -> None:
    manager, _domains, core = host
    with pytest.raises(ConfigError, match="needs-echo needs echo"):
        await manager.load(NeedsEcho, context(core, manager, "needs-echo", {}))
    await manager.load(EchoModule, context(core, manager, "echo", {}))
    await manager.load(NeedsEcho, context(core, manager, "needs-echo", {}))
