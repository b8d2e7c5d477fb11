"""TCP client listener: STARTTLS (RFC 6120 §5) and Direct TLS (XEP-0368).

Only moves bytes between the socket and the stream engine. One reader task per connection
processes input in order; the engine's writes go to the transport buffer, whose size the
engine checks before each delivery (a stuck reader is disconnected, never buffered forever).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from heron.config import LimitsConfig
from heron.ratelimit import ConnectionGuard
from heron.stanza import StreamCondition, StreamError
from heron.stream.base import TlsInfo
from heron.stream.c2s import C2SStream
from heron.stream.hosts import C2SHost
from heron.transport.runner import (
    TLS_HANDSHAKE_S,
    Admission,
    Connections,
    Reader,
    TcpListener,
    peer_address,
)


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
    """A stream's socket; STARTTLS as the server with ``tls`` (components have none)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: TlsProvider | None
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.peer = peer_address(writer)
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def buffered(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    async def start_tls(self, domain: str) -> TlsInfo:
        if self.tls is None:
            raise ConnectionError("no TLS on this connection")
        await self.writer.drain()
        await self.writer.start_tls(self.tls.context, ssl_handshake_timeout=TLS_HANDSHAKE_S)
        return tls_info(self.writer.get_extra_info("ssl_object"), domain, self.tls)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class C2SListener(TcpListener[C2SStream]):
    """Accepts client connections and runs one stream engine per connection."""

    def __init__(
        self,
        host: C2SHost,
        tls: TlsProvider,
        *,
        direct_tls: bool,
        policy: LimitsConfig,
        guard: ConnectionGuard,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(
            guard=guard, ssl_context=tls.context if direct_tls else None, reuse_port=reuse_port
        )
        self.host, self.tls, self.policy = host, tls, policy

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, admission: Admission
    ) -> None:
        link = TcpLink(reader, writer, self.tls)
        stream = C2SStream(self.host, link, is_tls=self.is_direct_tls)
        if self.is_direct_tls:
            stream.tls_established(tls_info(writer.get_extra_info("ssl_object"), "", self.tls))
        stream.log.info("connected%s", " (Direct TLS)" if self.is_direct_tls else "")
        await run_client(self, stream, reader, admission)


class ClientRunner(Protocol):
    """A listener's share of client sessions: the server, its limits and the live streams."""

    @property
    def host(self) -> C2SHost: ...

    @property
    def policy(self) -> LimitsConfig: ...

    @property
    def connections(self) -> Connections[C2SStream]: ...


async def run_client(
    runner: ClientRunner, stream: C2SStream, reader: Reader, admission: Admission
) -> None:
    """Run an admitted client stream to its end, whatever carries it (TCP, WebSocket, BOSH):
    deadlines for the header and the login, the traffic policy, and the cleanup that lets
    stream management hibernate a lost session. The caller releases ``admission``."""
    policy = runner.policy

    # The deadlines for the header and the login end once the session is bound: an idle
    # session then holds no timer (nor its handle in the loop) until its client leaves.
    loop = asyncio.get_running_loop()
    timers = [
        loop.call_later(policy.header_timeout_s, _header_deadline, stream),
        loop.call_later(policy.auth_timeout_s, stream.timed_out),
    ]

    def after_read() -> None:
        if stream.is_authenticated:
            admission.authenticated()
            if timers and stream.was_bound:
                _cancel(timers)

    try:
        await runner.connections.run(stream, reader, policy, after_read=after_read)
    finally:
        _cancel(timers)
        stream.link.close()
        try:
            await runner.host.ended(stream)
        except Exception:
            stream.log.exception("error cleaning up a session")
        stream.log.info("disconnected: %s", stream.close_reason or "closed")


def _cancel(timers: list[asyncio.TimerHandle]) -> None:
    for timer in timers:
        timer.cancel()
    timers.clear()


def _header_deadline(stream: C2SStream) -> None:
    if not stream.stream_id and not stream.is_closed:
        stream.close_reason = "no stream header in time"
        stream.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "no stream header"))
