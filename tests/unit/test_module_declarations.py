"""A module is one declarative file: options with bounds, a stream feature, a nonza, a
service domain with its own IQ handler, an HTTP route, a gauge and periodic work, all
applied on load and withdrawn on unload without a stop() of its own."""

from __future__ import annotations

import asyncio
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


class Queue:
    """A store writing behind: closing it writes what it holds."""

    def __init__(self, domains: Any) -> None:
        self.domains = domains
        self.closed_after: list[str] | None = None

    async def close(self) -> None:
        self.closed_after = sorted(self.domains.registries)  # what was still served


def _no_space(text: str) -> str | None:
    return "has a space" if " " in text else None


@dataclass(frozen=True, slots=True)
class EchoOptions:
    max_bytes: int = option(4096, min=1, max=65536)
    mode: str = option("loud", choices=("loud", "quiet"))
    timeout_s: float = option(30.0, above=0)
    quota_bytes: int = option(8192, min="max_bytes")
    is_public: bool = False
    is_listed: bool = option(False, needs="is_public")
    names: tuple[str, ...] = option((), check=_no_space)


class EchoModule(Module):
    name = "echo"
    xeps = (Xep(9999, "1.0", "complete"),)
    disco_features = (ECHO,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(EchoOptions)
        self.service = f"echo.{ctx.domain}"
        self.sweeps = 0
        self.swept_thrice = asyncio.Event()

    async def start(self) -> None:
        service = self.ctx.add_service(self.service)
        service.add_iq_handler("get", ECHO, Target.HOST, self.on_echo)
        self.ctx.every(0.001, self.sweep)
        self.queue = self.ctx.closing(Queue(self.ctx.domains))
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

    async def sweep(self) -> None:
        self.sweeps += 1
        if self.sweeps == 3:
            self.swept_thrice.set()
        if self.sweeps == 1:
            raise RuntimeError("a failing run is logged; the next one still comes")


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
    return core.for_module(
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
    assert module.options == EchoOptions(max_bytes=10)
    assert [f() for f in reg.postauth_features] == [Element("echo", ECHO)]
    assert ECHO in reg.nonzas
    assert reg.find_iq_handler("get", ECHO, Target.HOST) is not None
    assert ECHO in reg.features
    assert "echo.example.org" in domains.registries
    assert reg.items["echo.example.org"] == "Echo"
    assert [r[:2] for r in domains.http_routes] == [("GET", "/echo")]
    assert "heron_echo" in core.metrics.render()

    service = domains.registries["echo.example.org"]
    assert service.find_iq_handler("get", ECHO, Target.HOST) is not None
    async with asyncio.timeout(5):
        await module.swept_thrice.wait()
    (task,) = module.ctx.tasks
    assert EchoModule.stop is Module.stop  # nothing hand-written to undo

    queue = module.queue
    assert queue.closed_after is None

    await manager.unload("echo")
    assert queue.closed_after == [DOMAIN]  # closed last, once the service was withdrawn
    assert task.cancelled()
    assert module.ctx.tasks == []
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
        ({"quota_bytes": 100}, "modules.echo.quota_bytes: must be ≥ max_bytes"),
        ({"max_bytes": 9000}, "modules.echo.quota_bytes: must be ≥ max_bytes"),
        ({"is_listed": True}, "modules.echo.is_listed: needs is_public = true"),
        ({"names": ["a", "b c"]}, "modules.echo.names: 'b c' has a space"),
    ],
)
async def test_option_bounds_are_checked_naming_the_key(
    host: Any, options: dict[str, object], says: str
) -> None:
    manager, _domains, core = host
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
        await manager.load(EchoModule, context(core, manager, "echo", options))
    assert manager.registry.postauth_features == []  # nothing half-applied


async def test_related_and_checked_options_pass_when_right(host: Any) -> None:
    manager, _domains, core = host
    given = {"max_bytes": 9000, "quota_bytes": 9000, "is_public": True, "is_listed": True}
    module = await manager.load(
        EchoModule, context(core, manager, "echo", {**given, "names": ["a", "b"]})
    )
    assert module.options == EchoOptions(
        max_bytes=9000, quota_bytes=9000, is_public=True, is_listed=True, names=("a", "b")
    )
    await manager.unload("echo")


async def test_periodic_work_ends_when_start_fails(host: Any) -> None:
    manager, _domains, core = host

    class Failing(EchoModule):
        name = "failing"

        async def start(self) -> None:
            await super().start()
            raise RuntimeError("start failed after registering")

    ctx = context(core, manager, "failing", {})
    with pytest.raises(RuntimeError, match="start failed"):
        await manager.load(Failing, ctx)
    assert ctx.tasks == []
    assert ctx.undo == []
    assert "echo.example.org" not in manager.registry.items


async def test_a_missing_required_module_is_named(host: Any) -> None:
    manager, _domains, core = host
    with pytest.raises(ConfigError, match="needs-echo needs echo"):
        await manager.load(NeedsEcho, context(core, manager, "needs-echo", {}))
    await manager.load(EchoModule, context(core, manager, "echo", {}))
    await manager.load(NeedsEcho, context(core, manager, "needs-echo", {}))


@dataclass(frozen=True, slots=True)
class MaybeOptions:
    uses_echo: bool = False


class MaybeNeedsEcho(Module):
    """Needs echo only with an option set (antispam needs roster unless strangers pass)."""

    name = "maybe-echo"

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(MaybeOptions)

    def needs(self) -> tuple[str, ...]:
        return ("echo",) if self.options.uses_echo else ()

    @iq_handler("get", ECHO, Target.BARE)
    async def on_echo(self, iq: Stanza) -> Element | None:
        return None


async def test_a_need_that_depends_on_an_option(host: Any) -> None:
    manager, _domains, core = host
    with pytest.raises(ConfigError, match="maybe-echo needs echo"):
        await manager.load(
            MaybeNeedsEcho, context(core, manager, "maybe-echo", {"uses_echo": True})
        )
    assert manager.registry.find_iq_handler("get", ECHO, Target.BARE) is None  # nothing applied
    await manager.load(MaybeNeedsEcho, context(core, manager, "maybe-echo", {}))
    await manager.unload("maybe-echo")
    await manager.load(EchoModule, context(core, manager, "echo", {}))
    await manager.load(MaybeNeedsEcho, context(core, manager, "maybe-echo", {"uses_echo": True}))
