"""TCP client listener: STARTTLS (RFC 6120 §5) and Direct TLS (XEP-0368).

Only moves bytes between the socket and the stream engine. One reader task per connection
processes input in order; the engine's writes go to the transport buffer, whose size the
engine checks before each delivery (a stuck reader is disconnected, never buffered forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from heron.ratelimit import ConnectionGuard, TokenBucket
from heron.stanza import StreamCondition, StreamError
from heron.stream.base import TlsInfo
from heron.stream.c2s import C2SStream, State
from heron.stream.hosts import C2SHost
from heron.xmlstream import StreamParser

log = logging.getLogger(__name__)

READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class TlsProvider:
    """TLS material for the listener: a context (SNI-aware) and channel-binding data."""

    context: ssl.SSLContext
    end_point_binding: Callable[[str], bytes | None]  # domain → tls-server-end-point data


def tls_info(ssl_object: ssl.SSLObject | None, domain: str, tls: TlsProvider) -> TlsInfo:
    if ssl_object is None:
        return TlsInfo("none", {})
    version = ssl_object.version() or "unknown"
    bindings: dict[str, bytes] = {}
    end_point = tls.end_point_binding(domain or (ssl_object.server_hostname or ""))
    if end_point is not None:
        bindings["tls-server-end-point"] = end_point
    if version != "TLSv1.3":
        # RFC 9266 forbids tls-unique on TLS 1.3; CPython cannot export keying material
        # (no tls-exporter), so TLS 1.3 clients get tls-server-end-point only.
        unique = ssl_object.get_channel_binding("tls-unique")
        if unique:
            bindings["tls-unique"] = unique
    return TlsInfo(version, bindings, ssl_object.getpeercert(binary_form=True))


class TcpLink:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: TlsProvider
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.tls = tls
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def buffered(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    async def start_tls(self, domain: str) -> TlsInfo:
        await self.writer.drain()
        await self.writer.start_tls(self.tls.context, ssl_handshake_timeout=15.0)
        return tls_info(self.writer.get_extra_info("ssl_object"), domain, self.tls)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    """Per-connection deadlines and rates (see LimitsConfig for what each means)."""

    header_timeout_s: float = 10.0
    auth_timeout_s: float = 30.0
    stanza_timeout_s: float = 60.0
    bytes_per_s: float = 262144
    bytes_burst: float = 1048576
    stanzas_per_s: float = 500.0
    stanzas_burst: float = 1000
    max_backlog_s: float = 30.0  # over a rate without a break for this long: cut off


class C2SListener:
    """Accepts client connections and runs one stream engine per connection."""

    def __init__(
        self,
        host: C2SHost,
        tls: TlsProvider,
        *,
        direct_tls: bool,
        policy: TrafficPolicy,
        guard: ConnectionGuard,
    ) -> None:
        self.host = host
        self.tls = tls
        self.direct_tls = direct_tls
        self.policy = policy
        self.guard = guard
        self.streams: set[C2SStream] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self._refusals_logged: dict[str, float] = {}

    async def start(self, address: str, port: int, *, reuse_port: bool = False) -> int:
        self.server = await asyncio.start_server(
            self._connection,
            address,
            port,
            ssl=self.tls.context if self.direct_tls else None,
            ssl_handshake_timeout=15.0 if self.direct_tls else None,
            backlog=1024,
            limit=READ_CHUNK,
            reuse_port=reuse_port or None,
        )
        sock = self.server.sockets[0]
        bound: int = sock.getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for stream in list(self.streams):
            stream.close(StreamError(StreamCondition.SYSTEM_SHUTDOWN, "server shutting down"))
        for task in list(self.tasks):
            task.cancel()  # a connection paused by the rate limits would wait on
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
        if self.server is not None:
            await self.server.wait_closed()

    def _refuse(self, ip: str, reason: str, writer: asyncio.StreamWriter) -> None:
        now = time.monotonic()
        if now - self._refusals_logged.get(ip, -60.0) >= 60.0:  # a flood logs once a minute
            if len(self._refusals_logged) > 10000:
                self._refusals_logged.clear()
            self._refusals_logged[ip] = now
            log.warning("refused a connection from %s: %s", ip, reason)
        writer.transport.abort()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = TcpLink(reader, writer, self.tls)
        refusal = self.guard.admit(link.peer, time.monotonic())
        if refusal is not None:
            self._refuse(link.peer, refusal, writer)
            return
        stream = C2SStream(self.host, link, is_tls=self.direct_tls)
        if self.direct_tls:
            stream.tls_established(tls_info(writer.get_extra_info("ssl_object"), "", self.tls))
        stream.log.info("connected%s", " (Direct TLS)" if self.direct_tls else "")
        try:
            await run_client(self, stream, reader)
        finally:
            with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)


class ClientRunner(Protocol):
    """A listener's share of client sessions: the server, its limits and the live streams."""

    @property
    def host(self) -> C2SHost: ...

    @property
    def policy(self) -> TrafficPolicy: ...

    @property
    def guard(self) -> ConnectionGuard: ...

    @property
    def streams(self) -> set[C2SStream]: ...

    @property
    def tasks(self) -> set[asyncio.Task[None]]: ...


async def run_client(runner: ClientRunner, stream: C2SStream, reader: Reader) -> None:
    """Run an admitted client stream to its end, whatever carries it (TCP, WebSocket):
    deadlines for the header and the login, the traffic policy, and the cleanup."""
    runner.streams.add(stream)
    task = asyncio.current_task()
    if task is not None:
        runner.tasks.add(task)
    counted_login = False
    try:
        counted_login = await _run(runner, stream, reader)
    except asyncio.CancelledError:
        stream.close_reason = stream.close_reason or "server shutting down"
    except Exception:
        stream.log.exception("internal error on a client stream")
        stream.close(StreamError(StreamCondition.INTERNAL_SERVER_ERROR))
    finally:
        authenticated = counted_login or stream.is_authenticated
        runner.guard.closed(stream.link.peer, authenticated=authenticated)
        runner.streams.discard(stream)
        if task is not None:
            runner.tasks.discard(task)
        stream.link.close()
        try:
            await runner.host.ended(stream)
        except Exception:
            stream.log.exception("error cleaning up a session")
        stream.log.info("disconnected: %s", stream.close_reason or "closed")


async def _run(runner: ClientRunner, stream: C2SStream, reader: Reader) -> bool:
    """Read until the stream ends; returns whether the guard was told of the login."""
    policy = runner.policy
    loop = asyncio.get_running_loop()
    header_timer = loop.call_later(policy.header_timeout_s, _header_deadline, stream)
    auth_timer = loop.call_later(policy.auth_timeout_s, stream.timed_out)
    told_guard = False

    def after_read() -> None:
        nonlocal told_guard
        if stream.is_authenticated and not told_guard:
            told_guard = True
            runner.guard.authenticated(stream.link.peer)
        if stream.is_bound:
            auth_timer.cancel()
        if stream.stream_id:
            header_timer.cancel()

    try:
        await pump(stream, reader, policy, after_read)
    finally:
        header_timer.cancel()
        auth_timer.cancel()
    return told_guard


class Reader(Protocol):
    """Where a stream's bytes come from: a socket, or the messages of a WebSocket."""

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes; b"" at the end."""
        ...


class Pumped(Protocol):
    """What ``pump`` drives: a client or server stream engine."""

    parser: StreamParser
    pace: Callable[[], float] | None
    close_reason: str

    @property
    def is_closed(self) -> bool: ...

    async def receive(self, data: bytes) -> None: ...

    def eof(self) -> None: ...

    def close(self, error: StreamError | None = None) -> None: ...


async def pump(
    stream: Pumped,
    reader: Reader,
    policy: TrafficPolicy,
    after_read: Callable[[], None] | None = None,
) -> None:
    """Feed a stream engine from the socket under the traffic policy until it ends."""
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


def _header_deadline(stream: C2SStream) -> None:
    if not stream.stream_id and stream.state is not State.CLOSED:
        stream.close_reason = "no stream header in time"
        stream.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "no stream header"))


def _stanza_deadline(stream: Pumped) -> None:
    """Slow-loris defence: a stanza begun long ago and still not finished ends the stream."""
    if not stream.is_closed:
        stream.close_reason = "stanza not completed in time"
        stream.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "stanza took too long"))
