"""The connection runner: ports shared by workers, the guard's accounting, shutdown."""

from __future__ import annotations

import asyncio
import socket

import pytest

from heron.ratelimit import ConnectionGuard, ConnectionLimits
from heron.stream.base import XmlStream
from heron.transport.runner import Admission, TcpListener


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
