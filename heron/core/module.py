"""The module API: a feature declares what it registers; the manager applies and withdraws it.

class PingModule(Module):
    name = "ping"
    xeps = (Xep(199, "2.1", "complete"),)
    disco_features = (ns.PING,)

    @iq_handler("get", ns.PING, Target.HOST | Target.SELF | Target.BARE)
    async def on_ping(self, iq: Stanza) -> Element | None:
        return None
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from heron.core.registry import Hook, HostRegistry, Identity, IqHandler, Target
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from heron.core.server import Server

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


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


@dataclass(frozen=True, slots=True)
class ModuleContext:
    """Everything a module may use, handed to its constructor (never globals)."""

    server: Server
    domain: str
    registry: HostRegistry
    options: Mapping[str, object]
    log: logging.LoggerAdapter[logging.Logger]

    async def send(self, element: Element) -> None:
        """Route a stanza the server itself originates (``from`` must be set by the caller)."""
        await self.server.router.route_element(element)


class Module:
    """Base class: declarations as class attributes and decorated methods."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    xeps: ClassVar[tuple[Xep, ...]] = ()
    disco_features: ClassVar[tuple[str, ...]] = ()
    identities: ClassVar[tuple[Identity, ...]] = ()

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        """Extra set-up beyond the declarations (stores, feature providers)."""

    async def stop(self) -> None:
        """Extra tear-down; declarations are withdrawn by the manager."""

    # --- applied by the manager -------------------------------------------------------
    def _declared_iq(self) -> list[tuple[str, str, Target, IqHandler]]:
        found = []
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            for type_, namespace, target in getattr(fn, "_heron_iq", ()):
                found.append((type_, namespace, target, getattr(self, attr)))
        return found

    def _declared_hooks(self) -> list[tuple[str, int, Hook]]:
        found = []
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            for event, priority in getattr(fn, "_heron_hook", ()):
                found.append((event, priority, getattr(self, attr)))
        return found


class ModuleManager:
    """Loads the modules enabled for one host, in order, and unloads them cleanly."""

    def __init__(self, registry: HostRegistry) -> None:
        self.registry = registry
        self.modules: dict[str, Module] = {}

    async def load(self, cls: type[Module], ctx: ModuleContext) -> Module:
        module = cls(ctx)
        reg = self.registry
        for type_, namespace, target, handler in module._declared_iq():
            reg.add_iq_handler(type_, namespace, target, handler)
        for event, priority, fn in module._declared_hooks():
            reg.add_hook(event, fn, priority)
        for feature in cls.disco_features:
            reg.add_feature(feature)
        reg.identities.extend(cls.identities)
        await module.start()
        self.modules[cls.name] = module
        log.debug("module %s loaded on %s", cls.name, reg.domain)
        return module

    async def unload(self, name: str) -> None:
        module = self.modules.pop(name)
        await module.stop()
        reg = self.registry
        for type_, namespace, _target, handler in module._declared_iq():
            reg.remove_iq_handler(type_, namespace, handler)
        for event, _priority, fn in module._declared_hooks():
            reg.remove_hook(event, fn)
        for feature in type(module).disco_features:
            reg.remove_feature(feature)
        for identity in type(module).identities:
            reg.identities.remove(identity)

    async def unload_all(self) -> None:
        for name in reversed(list(self.modules)):
            await self.unload(name)
