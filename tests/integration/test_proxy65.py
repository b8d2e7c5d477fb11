"""XEP-0065 SOCKS5 Bytestreams through Heron's proxy, with slixmpp's xep_0065 on both ends.

The initiator finds the proxy in the server's disco#items, learns its address, offers it to
the target, and both connect; after activation 300 KB go through and arrive intact. Raw
SOCKS5 clients check what slixmpp does not: nothing is relayed before activation, a
connection left unactivated is closed after the timeout, a third connection for the same
stream and a non-XEP-0065 address are refused, strangers may not use the proxy, and a
stream over its byte limit is cut.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from heron.app import RunningServer, start
from heron.core.bytestreams import stream_address
from heron.jid import JID
from tests.conftest import make_config
from tests.integration.clients import close, login

PASSWORD = "proxy65-test-pw"
PROXY = "proxy.localhost"


async def proxy_server(tmp_path: Path, **options: object) -> RunningServer:
    proxy = {"port": 0, "pending_timeout_s": 10.0, **options}
    config = make_config(tmp_path / "data", hosts={"localhost": {"modules": {"proxy65": proxy}}})
    running = await start(config)
    for user in ("romeo", "juliet"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    return running


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await proxy_server(tmp_path)
    try:
        yield running
    finally:
        await running.stop()


async def test_file_transfer_through_the_proxy_keeps_every_byte(server: RunningServer) -> None:
    romeo = await login(server, "romeo@localhost/orchard", PASSWORD, plugins=("xep_0065",))
    juliet = await login(server, "juliet@localhost/balcony", PASSWORD, plugins=("xep_0065",))
    juliet.plugin["xep_0065"].auto_accept = True
    payload = os.urandom(300_000)
    received = bytearray()
    finished = asyncio.get_running_loop().create_future()

    def data(chunk: bytes) -> None:
        received.extend(chunk)
        if len(received) >= len(payload) and not finished.done():
            finished.set_result(None)

    juliet.add_event_handler("socks5_data", data)
    try:
        proxies = await romeo.plugin["xep_0065"].discover_proxies(timeout=5)
        ((jid, (host, port)),) = proxies.items()
        assert str(jid) == PROXY
        assert (host, int(port)) == ("127.0.0.1", server.ports["proxy65"])
        sock = await romeo.plugin["xep_0065"].handshake("juliet@localhost/balcony", timeout=10)
        assert sock is not None
        for start_at in range(0, len(payload), 16384):
            await sock.write(payload[start_at : start_at + 16384])
        await asyncio.wait_for(finished, 15)
        assert hashlib.sha256(received).hexdigest() == hashlib.sha256(payload).hexdigest()
    finally:
        await close(romeo)
        await close(juliet)


async def socks5_connect(
    port: int, address: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw SOCKS5 client: no-auth greeting and CONNECT to ``address`` (a hash), port 0."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    writer.write(b"\x05\x01\x00\x03" + bytes([len(address)]) + address.encode() + b"\x00\x00")
    head = await reader.readexactly(5)
    await reader.readexactly(head[4] + 2)  # BND.ADDR and BND.PORT
    return reader, writer, head[:2]


async def activate(client: Any, sid: str, target: str) -> Any:
    iq = client.make_iq_set(ito=PROXY)
    iq["socks"]["sid"] = sid
    iq["socks"]["activate"] = target
    return await iq.send(timeout=5)


async def test_nothing_is_relayed_before_activation_and_both_ways_after(
    server: RunningServer,
) -> None:
    romeo = await login(server, "romeo@localhost/orchard", PASSWORD, plugins=("xep_0065",))
    port = server.ports["proxy65"]
    address = stream_address("s1", JID.parse("romeo@localhost/orchard"), JID.parse("j@x/y"))
    try:
        with pytest.raises(IqError) as err:  # nobody connected yet
            await activate(romeo, "s1", "j@x/y")
        assert err.value.condition == "item-not-found"
        t_reader, t_writer, status = await socks5_connect(port, address)
        assert status == b"\x05\x00"
        with pytest.raises(IqError):  # only the target is there
            await activate(romeo, "s1", "j@x/y")
        i_reader, i_writer, status = await socks5_connect(port, address)
        assert status == b"\x05\x00"
        # A third connection for the same stream is refused (RFC 1928 "not allowed").
        _r, third, status = await socks5_connect(port, address)
        assert status == b"\x05\x02"
        third.close()
        # Someone else's activation (wrong initiator) matches no stream.
        juliet = await login(server, "juliet@localhost/x", PASSWORD, plugins=("xep_0065",))
        with pytest.raises(IqError):
            await activate(juliet, "s1", "j@x/y")
        await close(juliet)

        await activate(romeo, "s1", "j@x/y")
        i_writer.write(b"ping from the initiator")
        assert await t_reader.readexactly(23) == b"ping from the initiator"
        t_writer.write(b"pong")
        assert await i_reader.readexactly(4) == b"pong"
        i_writer.close()
        assert await t_reader.read() == b""  # the end reaches the other side
        t_writer.close()
    finally:
        await close(romeo)


async def test_data_before_activation_ends_the_connection(server: RunningServer) -> None:
    address = hashlib.sha1(b"early").hexdigest()  # noqa: S324 (an arbitrary stream address)
    reader, writer, status = await socks5_connect(server.ports["proxy65"], address)
    assert status == b"\x05\x00"
    writer.write(b"too early")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_unactivated_connection_times_out(tmp_path: Path) -> None:
    running = await proxy_server(tmp_path, pending_timeout_s=0.5)
    try:
        address = hashlib.sha1(b"waiting").hexdigest()  # noqa: S324
        reader, writer, _status = await socks5_connect(running.ports["proxy65"], address)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the timeout
        assert running.server.bytestreams.waiting == {}
        writer.close()
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("request_bytes", "answer"),
    [
        (b"\x05\x01\x02", b"\x05\xff"),  # only username/password offered
        (b"\x05\x01\x00\x05\x02\x00\x03\x01a\x00\x00", b"\x05\x00\x05\x07"),  # BIND
        (b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50", b"\x05\x00\x05\x08"),  # IPv4
        (b"\x05\x01\x00\x05\x01\x00\x03\x05short\x00\x00", b"\x05\x00\x05\x02"),  # not a hash
        (b"\x04\x01\x00\x50", b""),  # SOCKS4
    ],
)
async def test_bad_socks5_requests_are_refused(
    server: RunningServer, request_bytes: bytes, answer: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["proxy65"])
    writer.write(request_bytes)
    got = await asyncio.wait_for(reader.read(), 5)
    assert got[: len(answer)] == answer
    writer.close()


async def test_the_proxy_is_in_disco_and_strangers_may_not_use_it(tmp_path: Path) -> None:
    running = await proxy_server(tmp_path)
    await running.stop()
    # The same server with a second host: its users are strangers to localhost's proxy.
    config = make_config(
        tmp_path / "data",
        hosts={"localhost": {"modules": {"proxy65": {"port": 0}}}, "other.localhost": {}},
    )
    running = await start(config)
    await running.server.accounts.create(JID.parse("mallory@other.localhost"), PASSWORD)
    romeo = await login(running, "romeo@localhost/orchard", PASSWORD, plugins=("xep_0065",))
    mallory = await login(running, "mallory@other.localhost/x", PASSWORD, plugins=("xep_0065",))
    try:
        info = await romeo.plugin["xep_0030"].get_info(jid=PROXY, timeout=5)
        identities = info["disco_info"]["identities"]
        assert ("proxy", "bytestreams", None, "SOCKS5 Bytestreams") in identities
        assert "http://jabber.org/protocol/bytestreams" in info["disco_info"]["features"]
        address = await romeo.plugin["xep_0065"].get_network_address(PROXY, timeout=5)
        assert address["socks"]["streamhost"]["jid"] == PROXY
        with pytest.raises(IqError) as err:
            await mallory.plugin["xep_0065"].get_network_address(PROXY, timeout=5)
        assert err.value.condition == "forbidden"
        with pytest.raises(IqError) as err:
            await activate(mallory, "s", "romeo@localhost/orchard")
        assert err.value.condition == "forbidden"
    finally:
        await close(romeo)
        await close(mallory)
        await running.stop()


async def test_a_stream_over_its_byte_limit_is_cut(tmp_path: Path) -> None:
    running = await proxy_server(tmp_path, max_bytes=10_000)
    try:
        romeo = await login(running, "romeo@localhost/orchard", PASSWORD, plugins=("xep_0065",))
        address = stream_address("big", JID.parse("romeo@localhost/orchard"), JID.parse("j@x/y"))
        port = running.ports["proxy65"]
        t_reader, t_writer, _ = await socks5_connect(port, address)
        _i_reader, i_writer, _ = await socks5_connect(port, address)
        await activate(romeo, "big", "j@x/y")
        i_writer.write(os.urandom(50_000))
        got = await asyncio.wait_for(t_reader.read(), 5)  # ends early: closed at the limit
        assert len(got) < 50_000
        i_writer.close()
        t_writer.close()
        await close(romeo)
    finally:
        await running.stop()
