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
from collections.abc import Callable
from dataclasses import dataclass

from heron.stream.c2s import C2SHost, C2SStream, State, TlsInfo

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
    return TlsInfo(version, bindings)


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


class C2SListener:
    """Accepts client connections and runs one stream engine per connection."""

    def __init__(
        self,
        host: C2SHost,
        tls: TlsProvider,
        *,
        direct_tls: bool,
        auth_timeout_s: float,
        header_timeout_s: float,
    ) -> None:
        self.host = host
        self.tls = tls
        self.direct_tls = direct_tls
        self.auth_timeout_s = auth_timeout_s
        self.header_timeout_s = header_timeout_s
        self.streams: set[C2SStream] = set()
        self.server: asyncio.Server | None = None

    async def start(self, address: str, port: int) -> int:
        self.server = await asyncio.start_server(
            self._connection,
            address,
            port,
            ssl=self.tls.context if self.direct_tls else None,
            ssl_handshake_timeout=15.0 if self.direct_tls else None,
            backlog=1024,
            limit=READ_CHUNK,
        )
        sock = self.server.sockets[0]
        bound: int = sock.getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for stream in list(self.streams):
            from heron.stanza import StreamCondition, StreamError

            stream.close(StreamError(StreamCondition.SYSTEM_SHUTDOWN, "server shutting down"))
        if self.server is not None:
            await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = TcpLink(reader, writer, self.tls)
        stream = C2SStream(self.host, link, is_tls=self.direct_tls)
        if self.direct_tls:
            stream.tls_established(tls_info(writer.get_extra_info("ssl_object"), "", self.tls))
        stream.log.info("connected%s", " (Direct TLS)" if self.direct_tls else "")
        self.streams.add(stream)
        loop = asyncio.get_running_loop()
        header_timer = loop.call_later(self.header_timeout_s, _header_deadline, stream)
        auth_timer = loop.call_later(self.auth_timeout_s, stream.timed_out)
        try:
            while stream.state is not State.CLOSED:
                try:
                    data = await reader.read(READ_CHUNK)
                except (ConnectionError, ssl.SSLError, OSError) as exc:
                    stream.close_reason = f"read error: {exc.__class__.__name__}"
                    data = b""
                if not data:
                    stream.eof()
                    break
                await stream.receive(data)
                if stream.is_authenticated:
                    auth_timer.cancel()
                if stream.stream_id:
                    header_timer.cancel()
        except Exception:
            stream.log.exception("internal error on a client stream")
            from heron.stanza import StreamCondition, StreamError

            stream.close(StreamError(StreamCondition.INTERNAL_SERVER_ERROR))
        finally:
            header_timer.cancel()
            auth_timer.cancel()
            self.streams.discard(stream)
            link.close()
            try:
                await self.host.ended(stream)
            except Exception:
                stream.log.exception("error cleaning up a session")
            stream.log.info("disconnected: %s", stream.close_reason or "closed")
            with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)


def _header_deadline(stream: C2SStream) -> None:
    if not stream.stream_id and stream.state is not State.CLOSED:
        from heron.stanza import StreamCondition, StreamError

        stream.close_reason = "no stream header in time"
        stream.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "no stream header"))
