"""The module API: a feature declares what it registers; the manager applies and withdraws it.

class PingModule(Module):
    name = "ping"
    xeps = (Xep(199, "2.1", "complete"),)
    disco_features = (ns.PING,)

    @iq_handler("get", ns.PING, Target.HOST | Target.SELF | Target.BARE)
    async def on_ping(self, iq: Stanza) -> Element | None:
        return None

A module sees the server only through its `ModuleContext`: the services it may use
(sessions, router, accounts, its stores, metrics, a clock, service domains, HTTP routes)
and nothing else. What it registers through the context (a service domain, an HTTP route,
a gauge, periodic work with `every`) or declares (IQ handlers, hooks, stream features,
nonzas, disco features) is withdrawn by the manager when the module unloads, so most
modules have no `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from heron.config import ConfigError, HostConfig, build_options
from heron.core.admins import Admins
from heron.core.control import Control, ReloadReport
from heron.core.placement import LocalPlacement, RoomPlacement
from heron.core.registry import (
    AccountDeleted,
    DiscoNodes,
    FeatureProvider,
    Hook,
    HostRegistry,
    Identity,
    IqHandler,
    PreauthHandler,
    Target,
)
from heron.jid import JID
from heron.storage.db import Database, SqlStore
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from heron.core.accounts import AccountService
    from heron.core.bytestreams import BytestreamBroker
    from heron.core.metrics import Metrics
    from heron.core.router import Router
    from heron.core.sessions import SessionManager
    from heron.storage.fast import FastTokenStore

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
P = TypeVar("P", bound=Callable[..., Any])
OptionsT = TypeVar("OptionsT")
S = TypeVar("S", bound=SqlStore)


class Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


@dataclass(frozen=True, slots=True)
class Xep:
    """An extension a module implements, for the README table and disco."""

    number: int
    version: str
    status: str  # "complete" | "partial"
    note: str = ""
    prosody: str = "yes"  # the anchors' support, for the README table (Prosody 0.12,
    ejabberd: str = "yes"  # ejabberd 23.01 as shipped by Debian)


def iq_handler(type_: str, namespace: str, target: Target) -> Callable[[F], F]:
    """Mark a method as the handler of IQs of ``type_`` whose payload is in ``namespace``."""

    def mark(fn: F) -> F:
        marks: list[tuple[str, str, Target]] = fn.__dict__.setdefault("_heron_iq", [])
        marks.append((type_, namespace, target))
        return fn

    return mark


def hook(event: str, priority: int = 0) -> Callable[[F], F]:
    """Mark a method as a stanza hook (events are named ``kind/target``, e.g. ``message/bare``)."""

    def mark(fn: F) -> F:
        marks: list[tuple[str, int]] = fn.__dict__.setdefault("_heron_hook", [])
        marks.append((event, priority))
        return fn

    return mark


def stream_feature(stage: str) -> Callable[[P], P]:
    """Mark a method ``() -> Element | None`` as a stream feature offered ``"preauth"``
    (before login) or ``"postauth"`` (after login)."""
    if stage not in ("preauth", "postauth"):
        raise ValueError(f"stream_feature: stage is preauth or postauth, not {stage!r}")

    def mark(fn: P) -> P:
        fn.__dict__.setdefault("_heron_feature", []).append(stage)
        return fn

    return mark


def nonza(namespace: str) -> Callable[[F], F]:
    """Mark a method ``(session, element)`` as the handler of top-level non-stanza elements
    in ``namespace`` from bound sessions (XEP-0352's <active/>)."""

    def mark(fn: F) -> F:
        fn.__dict__.setdefault("_heron_nonza", []).append(namespace)
        return fn

    return mark


class ServiceDomains(Protocol):
    """Domains a module serves besides its host (conference.*, pubsub.*, upload.*)."""

    def add_service(self, domain: str) -> HostRegistry: ...

    def remove_service(self, domain: str) -> None: ...

    def is_local_host(self, domain: str) -> bool: ...


HttpHandler = Callable[[Any], Awaitable[Any]]


class HttpSide(Protocol):
    """The HTTP listeners' shared routes, and where clients reach them."""

    http_routes: list[tuple[str, str, HttpHandler]]
    http_base_url: str


class Stores:
    """One instance of each store class, shared by the hosts, over the server's database.

    Tests may `provide` an instance (an in-memory store) before modules start."""

    def __init__(self, db: Database | None) -> None:
        self._db = db
        self._made: dict[type[Any], Any] = {}

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("storage is not open")
        return self._db

    def provide(self, cls: type[Any], instance: object) -> None:
        self._made[cls] = instance

    def get(self, cls: type[S]) -> S:
        made = self._made.get(cls)
        if made is None:
            made = self._made[cls] = cls(self.db)
        assert isinstance(made, cls)
        return made


@dataclass(frozen=True, slots=True)
class CoreServices:
    """What the server offers every module; built once by the server."""

    sessions: SessionManager
    router: Router
    accounts: AccountService
    fast: FastTokenStore
    metrics: Metrics
    stores: Stores
    domains: ServiceDomains
    http: HttpSide
    bytestreams: BytestreamBroker
    secret: Callable[[str], bytes]
    """A key for one purpose, derived from the server secret (stable across restarts)."""
    version: str
    data_dir: Path
    clock: Callable[[], float] = time.time
    admins: Admins = field(default_factory=Admins)
    """Who administers each host (the config's `admins`, updated on reload)."""
    control: Control = field(default_factory=Control)
    """Server-wide operations (reload) for the admin commands."""
    placement: RoomPlacement = field(default_factory=LocalPlacement)
    """Which node runs a room (a cluster), or always this one."""

    def for_module(
        self,
        *,
        domain: str,
        registry: HostRegistry,
        options: Mapping[str, object],
        log: logging.LoggerAdapter[logging.Logger],
        host: HostConfig | None = None,
        name: str = "",
    ) -> ModuleContext:
        """The context of one module on one host: these services, and its own parts."""
        core = {f.name: getattr(self, f.name) for f in dataclasses.fields(CoreServices)}
        return ModuleContext(
            **core, domain=domain, registry=registry, options=options, log=log, host=host, name=name
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleContext(CoreServices):
    """Everything a module may use, handed to its constructor (never globals): the core's
    services (its fields, inherited) and its own host, registry, options and logger."""

    domain: str
    registry: HostRegistry
    options: Mapping[str, object]
    log: logging.LoggerAdapter[logging.Logger]
    host: HostConfig | None = None
    name: str = ""
    # What was registered through this context, undone in reverse when the module unloads.
    undo: list[Callable[[], None]] = field(default_factory=list)
    # Periodic work started through this context, cancelled and awaited when it unloads.
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # What the module closes at unload (`closing`), last.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    # --- the core's services are this context's fields (inherited) --------------------
    @property
    def http_base_url(self) -> str:
        return self.http.http_base_url

    def now(self) -> float:
        return self.clock()

    async def reload(self) -> ReloadReport:
        """Re-read the configuration and certificates (XEP-0133 admin commands)."""
        return await self.control.reload()

    def is_admin(self, jid: JID) -> bool:
        """True when ``jid``'s account administers this module's host (config `admins`)."""
        return self.admins.is_admin(jid, self.domain)

    def store(self, cls: type[S]) -> S:
        """The shared instance of one of the module's declared stores."""
        return self.stores.get(cls)

    def settings(self, cls: type[OptionsT]) -> OptionsT:
        """The module's options as the dataclass ``cls`` (types and `option()` bounds
        checked; errors name the key)."""
        return build_options(cls, self.options, self.key_path)

    @property
    def key_path(self) -> str:
        return f'hosts."{self.domain}".modules.{self.name}'

    def is_local_host(self, domain: str) -> bool:
        return self.domains.is_local_host(domain)

    async def send(self, element: Element) -> None:
        """Route a stanza the server itself originates (``from`` must be set by the caller)."""
        await self.router.route_element(element)

    # --- registrations withdrawn automatically ----------------------------------------
    def add_service(self, domain: str) -> HostRegistry:
        """Serve ``domain`` (a MUC or pubsub service) with a registry of its own."""
        registry = self.domains.add_service(domain)
        self.undo.append(lambda: self.domains.remove_service(domain))
        return registry

    def add_http_route(self, method: str, path: str, handler: HttpHandler) -> None:
        route = (method, path, handler)
        self.http.http_routes.append(route)
        self.undo.append(lambda: self.http.http_routes.remove(route))

    def add_gauge(
        self, name: str, help_: str, read: Callable[[], list[tuple[dict[str, str], float]]]
    ) -> None:
        self.metrics.gauge(name, help_, read)
        self.undo.append(lambda: self.metrics.remove(name, read))

    def add_item(self, jid: str, name: str = "") -> None:
        """An entry in the host's disco#items."""
        items = self.registry.items
        items[jid] = name

        def remove() -> None:
            items.pop(jid, None)

        self.undo.append(remove)

    def add_disco_nodes(self, provider: DiscoNodes) -> None:
        """Serve disco nodes of the host (answered through the disco module)."""
        nodes = self.registry.disco_nodes
        nodes.append(provider)
        self.undo.append(lambda: nodes.remove(provider))

    def add_account_feature(self, feature: str) -> None:
        """A feature in the disco#info of the host's accounts."""
        features = self.registry.account_features
        features.add(feature)
        self.undo.append(lambda: features.discard(feature))

    def on_account_deleted(self, callback: AccountDeleted) -> None:
        """Called with the bare JID after an account is deleted (drop what is cached; rows
        owned by the account go with it through their foreign key)."""
        callbacks = self.registry.account_deleted
        callbacks.append(callback)
        self.undo.append(lambda: callbacks.remove(callback))

    def add_preauth_iq(self, type_: str, namespace: str, handler: PreauthHandler) -> None:
        """An IQ handler for streams not yet authenticated (in-band registration)."""
        table = self.registry.preauth_iq
        table[(type_, namespace)] = handler

        def remove() -> None:
            if table.get((type_, namespace)) == handler:
                del table[(type_, namespace)]

        self.undo.append(remove)

    def on_unload(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` when the module unloads (a service slot of the registry it filled)."""
        self.undo.append(undo)

    def every(self, seconds: float, work: Callable[[], Awaitable[object]]) -> None:
        """Run ``work`` now and then every ``seconds`` until the module unloads (a sweep of
        expired rows). A failing run is logged and the next one still comes."""
        if not seconds > 0:
            raise ValueError(f"every: seconds must be > 0, not {seconds!r}")

        async def forever() -> None:
            while True:
                try:
                    await work()
                except Exception:
                    self.log.exception("periodic %s failed", getattr(work, "__name__", work))
                await asyncio.sleep(seconds)

        self.tasks.append(asyncio.create_task(forever(), name=f"{self.name}: every {seconds}s"))

    def closing(self, resource: C) -> C:
        """Close ``resource`` (a store that writes behind) when the module unloads, after its
        registrations and periodic work are gone, so what it queued is written."""
        self.closers.append(resource.close)
        return resource

    async def withdraw(self) -> None:
        """Undo what was registered through this context, end its periodic work, then close
        what it closes (in reverse order of registration)."""
        while self.undo:
            self.undo.pop()()
        tasks, self.tasks[:] = list(self.tasks), []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self.closers:
            await self.closers.pop()()


class Module:
    """Base class: declarations as class attributes and decorated methods.

    ``requires`` names modules that must be enabled on the same host (checked at start);
    ``stores`` the `SqlStore` classes whose schema the server migrates before any module
    starts, reached with ``ctx.store(cls)``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    xeps: ClassVar[tuple[Xep, ...]] = ()
    disco_features: ClassVar[tuple[str, ...]] = ()
    identities: ClassVar[tuple[Identity, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    stores: ClassVar[tuple[type[SqlStore], ...]] = ()

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx

    def needs(self) -> tuple[str, ...]:
        """The modules this one needs with its options: ``requires``, unless an option
        makes one of them needed or not (checked at start like ``requires``)."""
        return type(self).requires

    async def start(self) -> None:
        """Extra set-up beyond the declarations (stores, feature providers)."""

    async def stop(self) -> None:
        """Extra tear-down; declarations are withdrawn by the manager."""

    async def reconfigure(self, options: Mapping[str, object]) -> bool:
        """New options on a configuration reload. True: applied in place, the module goes
        on with its state (raise ConfigError to refuse them); False, the default: the
        manager restarts it with them."""
        return False

    # --- applied by the manager -------------------------------------------------------
    def _marked(self, mark: str) -> list[tuple[Any, Any]]:
        """(what the decorator noted, the bound method) for each note ``mark`` of a method."""
        cls = type(self)
        return [
            (noted, getattr(self, attr))
            for attr in dir(cls)
            for noted in getattr(getattr(cls, attr, None), mark, ())
        ]

    def _declared_iq(self) -> list[tuple[str, str, Target, IqHandler]]:
        return [(type_, ns_, target, fn) for (type_, ns_, target), fn in self._marked("_heron_iq")]

    def _declared_hooks(self) -> list[tuple[str, int, Hook]]:
        return [(event, priority, fn) for (event, priority), fn in self._marked("_heron_hook")]

    def _declared_features(self) -> list[tuple[str, FeatureProvider]]:
        return self._marked("_heron_feature")

    def _declared_nonzas(self) -> list[tuple[str, Any]]:
        return self._marked("_heron_nonza")


class ModuleManager:
    """Loads the modules enabled for one host, in order, and unloads them cleanly."""

    def __init__(self, registry: HostRegistry) -> None:
        self.registry = registry
        self.modules: dict[str, Module] = {}

    async def load(self, cls: type[Module], ctx: ModuleContext) -> Module:
        module = cls(ctx)  # reads its options and stores; registers nothing yet
        missing = [name for name in module.needs() if name not in self.modules]
        if missing:
            raise ConfigError(
                f'hosts."{ctx.domain}".modules: {cls.name} needs {", ".join(missing)} '
                "(enabled before it)"
            )
        reg = self.registry
        for stage, provider in module._declared_features():
            (reg.preauth_features if stage == "preauth" else reg.postauth_features).append(provider)
        for namespace, handler in module._declared_nonzas():
            reg.nonzas[namespace] = handler
        for type_, namespace, target, handler in module._declared_iq():
            reg.add_iq_handler(type_, namespace, target, handler)
        for event, priority, fn in module._declared_hooks():
            reg.add_hook(event, fn, priority)
        for feature in cls.disco_features:
            reg.add_feature(feature)
        reg.identities.extend(cls.identities)
        self.modules[cls.name] = module
        try:
            await module.start()
        except BaseException:
            del self.modules[cls.name]
            await self._withdraw(module)
            raise
        log.debug("module %s loaded on %s", cls.name, reg.domain)
        return module

    async def unload(self, name: str) -> None:
        module = self.modules.pop(name)
        try:
            await module.stop()
        finally:
            await self._withdraw(module)

    async def _withdraw(self, module: Module) -> None:
        reg = self.registry
        for stage, provider in module._declared_features():
            features = reg.preauth_features if stage == "preauth" else reg.postauth_features
            if provider in features:
                features.remove(provider)
        for namespace, handler in module._declared_nonzas():
            if reg.nonzas.get(namespace) == handler:
                del reg.nonzas[namespace]
        for type_, namespace, _target, handler in module._declared_iq():
            reg.remove_iq_handler(type_, namespace, handler)
        for event, _priority, fn in module._declared_hooks():
            reg.remove_hook(event, fn)
        for feature in type(module).disco_features:
            reg.remove_feature(feature)
        for identity in type(module).identities:
            if identity in reg.identities:
                reg.identities.remove(identity)
        await module.ctx.withdraw()  # its registrations, then periodic work and closing

    async def unload_all(self) -> None:
        for name in reversed(list(self.modules)):
            await self.unload(name)
