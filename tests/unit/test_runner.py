"""The connection runner: ports shared by workers, the guard's accounting, shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from heron.config import LimitsConfig
from heron.ratelimit import ConnectionGuard, ConnectionLimits
from heron.stream.base import TlsInfo, XmlStream
from heron.transport.runner import Admission, Connections, TcpListener
from heron.xmlstream import Element, Limits, StreamOpened, serialize


class Echo(TcpListener[XmlStream]):
    """Answers each connection with one line, then waits for the peer to go."""

    def __init__(self, name: bytes, *, reuse_port: bool = False) -> None:
        super().__init__(guard=None, reuse_port=reuse_port)
        self.name = name

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, admission: Admission
    ) -> None:
        writer.write(self.name)
        await reader.read()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
async def test_reuse_port_lets_two_listeners_share_a_port() -> None:
    first, second = Echo(b"1", reuse_port=True), Echo(b"2", reuse_port=True)
    port = await first.start("127.0.0.1", 0)
    try:
        assert await second.start("127.0.0.1", port) == port
    finally:
        await first.stop()
        await second.stop()


async def test_without_reuse_port_a_taken_port_is_refused() -> None:
    first, second = Echo(b"1"), Echo(b"2")
    port = await first.start("127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match=r"(?i)in use"):
            await second.start("127.0.0.1", port)
    finally:
        await first.stop()


async def test_stop_ends_the_connections_still_open() -> None:
    listener = Echo(b"hello")
    port = await listener.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await reader.readexactly(5) == b"hello"
    assert len(listener.connections.tasks) == 1
    await asyncio.wait_for(listener.stop(), 10)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed its side
    assert not listener.connections.tasks
    writer.close()
    await writer.wait_closed()


def test_an_admission_tells_the_guard_once_and_releases_once() -> None:
    guard = ConnectionGuard(ConnectionLimits(max_unauthenticated_per_ip=1))
    assert guard.admit("192.0.2.7", 0.0) is None
    assert guard.admit("192.0.2.7", 0.0) is not None  # one is still logging in
    admission = Admission(guard, "192.0.2.7")
    admission.authenticated()
    admission.authenticated()
    assert guard.admit("192.0.2.7", 0.0) is None  # logged in: no longer counted as such
    admission.release()
    admission.release()
    assert guard.total == 1


class FakeLink:
    peer = "192.0.2.9"

    def __init__(self) -> None:
        self.out = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def buffered(self) -> int:
        return 0

    async def start_tls(self, domain: str) -> TlsInfo:
        raise ConnectionError("no TLS here")

    def close(self) -> None:
        self.closed = True


class Buggy(XmlStream):
    """Opens like a stream, then fails on its first element: a bug, not the peer's fault."""

    def __init__(self, link: FakeLink) -> None:
        super().__init__(link, Limits(), logging.getLogger("test"))
        self.ended = False

    @property
    def is_closed(self) -> bool:
        return self.ended

    def _mark_closed(self, *, lost: bool) -> None:
        self.ended = True

    def _opened(self, event: StreamOpened) -> None:
        self._write("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>")

    async def _element(self, el: Element) -> None:
        raise KeyError("a bug")

    def _send(self, el: Element) -> None:
        self._write(serialize(el, "jabber:client"))


class Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self, n: int = -1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


async def test_a_bug_in_an_engine_ends_only_its_stream_with_internal_server_error() -> None:
    connections: Connections[XmlStream] = Connections()
    link = FakeLink()
    stream = Buggy(link)
    header = (
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
    await connections.run(stream, Chunks(header, b"<message/>"), LimitsConfig())
    assert b"<internal-server-error" in link.out
    assert link.out.endswith(b"</stream:stream>")
    assert stream.is_closed
    assert link.closed
    assert not connections.streams
    assert not connections.tasks


async def test_shutdown_ends_each_stream_with_system_shutdown() -> None:
    connections: Connections[XmlStream] = Connections()
    link = FakeLink()
    stream = Buggy(link)
    connections.streams.add(stream)
    await connections.close_all()
    assert b"<system-shutdown" in link.out
    assert stream.is_closed
