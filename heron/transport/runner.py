"""One connection runner for every listener: accepting, admitting, running, stopping.

``TcpListener`` is the listening socket of each TCP port (client STARTTLS and Direct TLS,
servers, components, the SOCKS5 proxy): it admits a connection through the shared
``ConnectionGuard`` (the per-address counts span all ports), runs it in its own task, and
on ``stop`` closes what is open and cancels what still reads. ``Connections.run`` is the
life of one stream engine, whatever carries it (a socket, a WebSocket, BOSH requests):
tracked while it runs, fed by ``pump`` under the configured rates (``LimitsConfig``) with
its deadlines armed, and ended by a socket error quietly or by a bug with
``internal-server-error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from heron.config import LimitsConfig
from heron.ratelimit import ConnectionGuard, TokenBucket
from heron.stanza import StreamCondition, StreamError
from heron.stream.base import XmlStream

log = logging.getLogger(__name__)

READ_CHUNK = 65536
SWEEP_S = 2.0  # how often idle streams' parsers are compacted (quiet for 2 to 4 s)
# At most this many compactions (about 25 µs each) per sweep, so a sweep after a burst of
# logins does not stall the loop; the rest wait for the next sweep.
COMPACT_PER_SWEEP = 200
TLS_HANDSHAKE_S = 15.0

S = TypeVar("S", bound=XmlStream)


class Reader(Protocol):
    """Where a stream's bytes come from: a socket, or the messages of a WebSocket."""

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes; b"" at the end."""
        ...


def peer_address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class Admission:
    """An admitted connection's place in the ``ConnectionGuard``: counted as logging in until
    its stream authenticates, released once when the connection ends."""

    __slots__ = ("guard", "is_authenticated", "is_released", "peer")

    def __init__(self, guard: ConnectionGuard | None, peer: str) -> None:
        self.guard = guard
        self.peer = peer
        self.is_authenticated = False
        self.is_released = False

    def authenticated(self) -> None:
        if not self.is_authenticated and self.guard is not None:
            self.guard.authenticated(self.peer)
        self.is_authenticated = True

    def release(self) -> None:
        if not self.is_released and self.guard is not None:
            self.guard.closed(self.peer, authenticated=self.is_authenticated)
        self.is_released = True


async def cancel_all(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel (a connection paused by the rate limits would wait on) and await a while."""
    for task in list(tasks):
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)


class Connections(Generic[S]):
    """The live streams of a listener (or of the s2s connector) and the tasks reading them."""

    def __init__(self) -> None:
        self.streams: set[S] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def _sweep(self) -> None:
        """Every SWEEP_S while streams are open: idle streams drop their parsers' history."""
        self._sweeper = None
        budget = COMPACT_PER_SWEEP
        for stream in self.streams:
            if stream.parser.sweep():
                budget -= 1
                if budget == 0:
                    break
        if self.streams:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)

    async def close_all(self) -> None:
        """Shutdown: each stream ends with system-shutdown, then its reader is cancelled."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for stream in list(self.streams):
            stream.close(StreamError(StreamCondition.SYSTEM_SHUTDOWN, "server shutting down"))
        await cancel_all(self.tasks)

    async def run(
        self,
        stream: S,
        reader: Reader,
        policy: LimitsConfig,
        *,
        deadlines: Iterable[tuple[float, Callable[[], None]]] = (),
        after_read: Callable[[], None] | None = None,
    ) -> None:
        """Run an admitted stream until it ends. Nothing escapes but cancellation's end: the
        caller then releases what it holds (the link, the guard) and logs the end."""
        self.streams.add(stream)
        loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_S, self._sweep)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        timers = [loop.call_later(delay, callback) for delay, callback in deadlines]
        try:
            await pump(stream, reader, policy, after_read)
        except asyncio.CancelledError:
            stream.close_reason = stream.close_reason or "server shutting down"
        except (ssl.SSLError, OSError) as exc:
            stream.close_reason = f"TLS or socket error: {exc}"
        except Exception:
            stream.log.exception("internal error on a %s stream", stream.kind)
            stream.close(StreamError(StreamCondition.INTERNAL_SERVER_ERROR))
        finally:
            for timer in timers:
                timer.cancel()
            self.streams.discard(stream)
            if task is not None:
                self.tasks.discard(task)


class TcpListener(Generic[S]):
    """One listening TCP port (Direct TLS when given a context); ``_connection`` is what an
    admitted connection does. Its task is cancelled at ``stop`` if still running."""

    backlog = 1024
    read_limit = READ_CHUNK

    def __init__(
        self,
        *,
        guard: ConnectionGuard | None,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.guard = guard
        self.ssl_context = ssl_context
        self.reuse_port = reuse_port  # SO_REUSEPORT: several worker processes share the port
        self.connections: Connections[S] = Connections()
        self.server: asyncio.Server | None = None
        self._refusals_logged: dict[str, float] = {}

    @property
    def streams(self) -> set[S]:
        return self.connections.streams

    @property
    def is_direct_tls(self) -> bool:
        """TLS from the first byte (XEP-0368), not negotiated with STARTTLS."""
        return self.ssl_context is not None

    async def start(self, address: str, port: int) -> int:
        """Listen; returns the port bound (the one asked for, or the system's pick for 0)."""
        self.server = await asyncio.start_server(
            self._accept,
            address,
            port,
            ssl=self.ssl_context,
            ssl_handshake_timeout=TLS_HANDSHAKE_S if self.ssl_context is not None else None,
            backlog=self.backlog,
            limit=self.read_limit,
            reuse_port=self.reuse_port or None,
        )
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        await self._closing()
        if self.server is not None:
            await self.server.wait_closed()

    async def _closing(self) -> None:
        """Close what is open; by default the streams, then their readers."""
        await self.connections.close_all()

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, admission: Admission
    ) -> None:
        raise NotImplementedError

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_address(writer)
        if self.guard is not None:
            refusal = self.guard.admit(peer, time.monotonic())
            if refusal is not None:
                self._refused(peer, refusal)
                writer.transport.abort()
                return
        admission = Admission(self.guard, peer)
        task = asyncio.current_task()
        if task is not None:
            self.connections.tasks.add(task)
        try:
            await self._connection(reader, writer, admission)
        finally:
            admission.release()
            if task is not None:
                self.connections.tasks.discard(task)
            writer.close()
            with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)

    def _refused(self, peer: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._refusals_logged.get(peer, -60.0) >= 60.0:  # a flood logs once a minute
            if len(self._refusals_logged) > 10000:
                self._refusals_logged.clear()
            self._refusals_logged[peer] = now
            log.warning("refused a connection from %s: %s", peer, reason)


async def pump(
    stream: XmlStream,
    reader: Reader,
    policy: LimitsConfig,
    after_read: Callable[[], None] | None = None,
) -> None:
    """Feed a stream engine from its reader under the traffic policy until it ends."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    byte_bucket = TokenBucket(policy.bytes_per_s, policy.bytes_burst, now)
    stanza_bucket = TokenBucket(policy.stanzas_per_s, policy.stanzas_burst, now)
    throttled_since: float | None = None

    def pace() -> float:
        """Per stanza: over the rate, a wait; held over it for long, the stream ends."""
        nonlocal throttled_since
        now = loop.time()
        wait = stanza_bucket.take(1, now)
        if wait <= 0:
            throttled_since = None
            return 0.0
        if throttled_since is None:
            throttled_since = now
        elif now - throttled_since > policy.max_backlog_s:
            stream.close_reason = "stanza flood"
            raise StreamError(StreamCondition.POLICY_VIOLATION, "too many stanzas")
        return wait

    stream.pace = pace
    # Slow loris: a timer runs while a stanza is begun and unfinished (one timer per
    # stanza that spans reads, not one per read); when it fires the stream ends.
    deadline: asyncio.TimerHandle | None = None
    try:
        while not stream.is_closed:
            try:
                data = await reader.read(READ_CHUNK)
            except (ConnectionError, ssl.SSLError, OSError) as exc:
                stream.close_reason = f"read error: {exc.__class__.__name__}"
                data = b""
            if not data:
                stream.eof()
                return
            await stream.receive(data)
            if after_read is not None:
                after_read()
            if not stream.parser.mid_stanza:
                if deadline is not None:
                    deadline.cancel()
                    deadline = None
            elif deadline is None:
                deadline = loop.call_later(policy.stanza_timeout_s, _stanza_deadline, stream)
            # Over its byte rate a stream is read more slowly: TCP pushes back on the sender
            # instead of the server buffering (floods of stanzas are cut off by ``pace``).
            wait = byte_bucket.take(len(data), loop.time())
            if wait > 0 and not stream.is_closed:
                await asyncio.sleep(wait)
    finally:
        if deadline is not None:
            deadline.cancel()


def _stanza_deadline(stream: XmlStream) -> None:
    """Slow-loris defence: a stanza begun long ago and still not finished ends the stream."""
    if not stream.is_closed:
        stream.close_reason = "stanza not completed in time"
        stream.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "stanza took too long"))
