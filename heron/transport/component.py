"""The external component listener (XEP-0114, by custom on 127.0.0.1:5347).

Components authenticate with a shared secret over plain TCP, so the listener belongs on
loopback or a private network (XEP-0114 §5). Each connection runs one ``ComponentStream``
fed by the shared ``pump`` under the same traffic policy and connection guard as clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from heron.ratelimit import ConnectionGuard
from heron.stanza import StreamCondition, StreamError
from heron.stream.base import TlsInfo
from heron.stream.component import ComponentStream
from heron.stream.hosts import ComponentHost
from heron.transport.tcp import READ_CHUNK, TrafficPolicy, pump

log = logging.getLogger(__name__)


class _PlainLink:
    """A component connection: bytes only (no STARTTLS in XEP-0114)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def buffered(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    async def start_tls(self, domain: str) -> TlsInfo:
        raise ConnectionError("components do not negotiate TLS")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class ComponentListener:
    """Accepts component connections and runs one stream engine per connection."""

    def __init__(
        self, host: ComponentHost, *, policy: TrafficPolicy, guard: ConnectionGuard
    ) -> None:
        self.host = host
        self.policy = policy
        self.guard = guard
        self.streams: set[ComponentStream] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self, address: str, port: int, *, reuse_port: bool = False) -> int:
        self.server = await asyncio.start_server(
            self._connection,
            address,
            port,
            backlog=128,
            limit=READ_CHUNK,
            reuse_port=reuse_port or None,
        )
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for stream in list(self.streams):
            stream.close(StreamError(StreamCondition.SYSTEM_SHUTDOWN, "server shutting down"))
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
        if self.server is not None:
            await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _PlainLink(writer)
        if self.guard.admit(link.peer, time.monotonic()) is not None:
            writer.transport.abort()
            return
        stream = ComponentStream(self.host, link)
        stream.log.info("component connection")
        self.streams.add(stream)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self.policy.auth_timeout_s, stream.timed_out)
        counted = False

        def after_read() -> None:
            nonlocal counted
            if stream.is_authenticated and not counted:
                counted = True
                deadline.cancel()
                self.guard.authenticated(link.peer)

        try:
            await pump(stream, reader, self.policy, after_read)
        except asyncio.CancelledError:
            stream.close_reason = stream.close_reason or "server shutting down"
        except (ssl.SSLError, OSError) as exc:
            stream.close_reason = f"socket error: {exc}"
        except Exception:
            stream.log.exception("internal error on a component stream")
            stream.close(StreamError(StreamCondition.INTERNAL_SERVER_ERROR))
        finally:
            deadline.cancel()
            stream.eof()  # stops routing to it if it still was
            self.guard.closed(link.peer, authenticated=counted)
            self.streams.discard(stream)
            if task is not None:
                self.tasks.discard(task)
            link.close()
            stream.log.info(
                "component %s disconnected: %s",
                stream.domain or "(none)",
                stream.close_reason or "closed",
            )
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)
