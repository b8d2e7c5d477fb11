"""Routes to remote domains: one outgoing stream per (our domain, their domain), set up on
first use, with a bounded queue while it is being set up.

The core knows nothing of TCP: the wiring hands it a ``connect`` function that opens and
starts negotiating a stream. What cannot be delivered goes back to its sender with
``remote-server-not-found`` (no such server, refused, failed authentication) or
``remote-server-timeout`` (no answer in time), as RFC 6120 §8.3.3.16-17 describe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

log = logging.getLogger(__name__)


class OutgoingStream(Protocol):
    ready: asyncio.Future[None]
    can_verify: bool  # False for a peer's bidirectional stream (XEP-0288 §2.2)

    @property
    def is_closed(self) -> bool: ...

    def send(self, el: Element) -> None: ...

    async def verify(self, originating: str, stream_id: str, key: str) -> bool: ...

    def close(self) -> None: ...


Connect = Callable[[str, str], Awaitable[OutgoingStream]]
"""(our domain, their domain) → a stream that has started negotiating; raises OSError."""

Bounce = Callable[[Stanza, StanzaError], None]


@dataclass(frozen=True, slots=True)
class S2SLimits:
    connect_timeout_s: float = 30.0
    idle_timeout_s: float = 600.0
    max_queue: int = 500  # stanzas waiting per route while its stream is set up


@dataclass(slots=True)
class Route:
    local: str
    remote: str
    stream: OutgoingStream | None = None
    queue: list[Stanza] = field(default_factory=list)
    connecting: asyncio.Task[None] | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    last_used: float = 0.0
    verifier: OutgoingStream | None = None  # for dialback questions when ``stream`` cannot


class S2SManager:
    def __init__(
        self,
        connect: Connect | None,
        bounce: Bounce,
        limits: S2SLimits,
        deny: frozenset[str] = frozenset(),
    ) -> None:
        self.connect = connect
        self.deny = deny
        self.bounce = bounce
        self.limits = limits
        self.routes: dict[tuple[str, str], Route] = {}
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap_idle())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for route in list(self.routes.values()):
            if route.connecting is not None:
                route.connecting.cancel()
            for stream in (route.stream, route.verifier):
                if stream is not None:
                    stream.close()
        self.routes.clear()

    # --- sending ----------------------------------------------------------------------
    def send(self, stanza: Stanza) -> None:
        """Queue or send a stanza for a remote domain; failures come back as bounces."""
        if stanza.from_ is None or stanza.to is None:
            return
        if self.connect is None or stanza.to.domain in self.deny:
            self.bounce(stanza, StanzaError(StanzaCondition.REMOTE_SERVER_NOT_FOUND))
            return
        route = self._route(stanza.from_.domain, stanza.to.domain)
        route.last_used = time.monotonic()
        stream = route.stream
        if stream is not None and stream.ready.done() and not stream.ready.exception():
            if not stream.is_closed:
                stream.send(stanza.element)
                return
            route.stream = None
            route.opened.clear()
        if len(route.queue) >= self.limits.max_queue:
            self.bounce(stanza, StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, "queue full"))
            return
        route.queue.append(stanza)
        self._ensure_connecting(route)

    def adopt(self, local: str, remote: str, stream: OutgoingStream) -> None:
        """XEP-0288: a peer's bidirectional stream, on which it authenticated ``remote`` for
        ``local``, also carries ``local`` → ``remote``: no connection of our own needed. A
        working stream the route already has is kept."""
        route = self._route(local, remote)
        current = route.stream
        working = current is not None and not current.is_closed and current.ready.done()
        if current is not None and working and not current.ready.exception():
            return
        log.info("s2s %s -> %s: using the peer's bidirectional stream", local, remote)
        route.stream = stream
        route.opened.set()
        route.last_used = time.monotonic()
        if route.connecting is not None and not route.connecting.done():
            route.connecting.cancel()  # its queue is ours to send now
        queued, route.queue = route.queue, []
        for stanza in queued:
            stream.send(stanza.element)

    def _route(self, local: str, remote: str) -> Route:
        route = self.routes.get((local, remote))
        if route is None:
            route = self.routes[(local, remote)] = Route(local, remote)
        return route

    def _ensure_connecting(self, route: Route) -> None:
        if route.connecting is None or route.connecting.done():
            route.connecting = asyncio.ensure_future(self._establish(route))

    async def _establish(self, route: Route) -> None:
        assert self.connect is not None
        condition = StanzaCondition.REMOTE_SERVER_NOT_FOUND
        stream: OutgoingStream | None = None
        try:
            async with asyncio.timeout(self.limits.connect_timeout_s):
                for attempt in (1, 2):  # a second time when the peer refused EXTERNAL
                    stream = await self.connect(route.local, route.remote)
                    route.stream = stream
                    route.opened.set()
                    try:
                        await asyncio.shield(stream.ready)
                        break
                    except ConnectionError:
                        if attempt == 2 or not getattr(stream, "external_refused", False):
                            raise
                        stream.close()
        except asyncio.CancelledError:
            # adopt() found the peer's bidirectional stream: ours is not needed.
            if stream is not None and stream is not route.stream:
                stream.close()
            raise
        except TimeoutError:
            condition = StanzaCondition.REMOTE_SERVER_TIMEOUT
            log.info("s2s %s -> %s: timed out", route.local, route.remote)
        except (OSError, ConnectionError) as exc:
            log.info("s2s %s -> %s: %s", route.local, route.remote, str(exc) or type(exc).__name__)
        else:
            assert stream is not None  # the loop ran
            queued, route.queue = route.queue, []
            for stanza in queued:
                stream.send(stanza.element)
            return
        if route.stream is not None:
            route.stream.close()
        route.stream = None
        route.opened.clear()
        failed, route.queue = route.queue, []
        for stanza in failed:
            self.bounce(stanza, StanzaError(condition))

    # --- dialback questions -----------------------------------------------------------
    async def verify(self, receiving: str, originating: str, stream_id: str, key: str) -> bool:
        """Ask ``originating``'s server about a dialback key (over our stream to it)."""
        if self.connect is None or originating in self.deny:
            return False
        route = self._route(receiving, originating)
        route.last_used = time.monotonic()
        if route.stream is None or route.stream.is_closed:
            route.stream = None
            route.opened.clear()
            self._ensure_connecting(route)
        try:
            async with asyncio.timeout(self.limits.connect_timeout_s):
                if not route.opened.is_set():
                    opened = asyncio.ensure_future(route.opened.wait())
                    pending = {opened} | ({route.connecting} if route.connecting else set())
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    opened.cancel()
                stream = route.stream
                if stream is None:
                    return False  # the connection failed
                if not stream.can_verify:
                    # XEP-0288 §2.2: a peer's bidirectional stream takes no questions (the
                    # key may have come on it): one stream of ours, only for dialback.
                    if route.verifier is None or route.verifier.is_closed:
                        route.verifier = await self.connect(route.local, route.remote)
                    return await route.verifier.verify(originating, stream_id, key)
                answer = await stream.verify(originating, stream_id, key)
                if answer or not getattr(stream, "external_refused", False):
                    return answer
                # The peer refused our certificate on that stream before we could ask;
                # _establish opens a dialback-only one: ask there.
                while route.stream is stream or route.stream is None:
                    if route.connecting is None or route.connecting.done():
                        return False
                    await asyncio.sleep(0.05)
                return await route.stream.verify(originating, stream_id, key)
        except (TimeoutError, OSError, ConnectionError):
            return False

    # --- housekeeping -----------------------------------------------------------------
    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.limits.idle_timeout_s))
            cutoff = time.monotonic() - self.limits.idle_timeout_s
            for key, route in list(self.routes.items()):
                if route.last_used < cutoff and not route.queue:
                    for stream in (route.stream, route.verifier):
                        if stream is not None:
                            stream.close()
                    del self.routes[key]
