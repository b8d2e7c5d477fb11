"""Attacks on the component listener end only the offending stream; a connected component
and a client keep working, and the attacker never gets a route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.app import RunningServer, start
from heron.jid import JID
from tests.conftest import make_config
from tests.hostile.test_xml_attacks import BILLION_LAUGHS, condition_of
from tests.integration.clients import close, login
from tests.integration.test_components import GATEWAY, SECRET, component

PASSWORD = "component-attack-pw"
HEADER = (
    "<stream:stream xmlns='jabber:component:accept' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>"
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    config = make_config(
        tmp_path / "data",
        listeners=[
            {"kind": "c2s", "host": "127.0.0.1", "port": 0},
            {"kind": "component", "host": "127.0.0.1", "port": 0},
        ],
        components={GATEWAY: {"secret": SECRET}, "other.localhost": {"secret": SECRET}},
        limits={"auth_timeout_s": 3.0},
    )
    running = await start(config)
    await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def raw(server: RunningServer, payload: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["component"])
    writer.write(payload)
    try:
        return (await asyncio.wait_for(reader.read(), 10)).decode(errors="replace")
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("payload", "condition"),
    [
        (HEADER.format(to="other.localhost").encode() + BILLION_LAUGHS, "restricted-xml"),
        (
            HEADER.format(to="other.localhost").encode() + b"<handshake>" + b"a" * 40000,
            "policy-violation",
        ),
        (HEADER.format(to="other.localhost").encode() + b"<a><b></a>", "not-well-formed"),
        (
            HEADER.format(to="other.localhost").encode() + b"<handshake>x</handshake>",
            "not-authorized",
        ),
        (HEADER.format(to=GATEWAY).encode() + b"<message to='alice@localhost'/>", "not-authorized"),
        (b"\xff\xfe<stream:stream>", "not-well-formed"),
    ],
)
async def test_attack_ends_only_that_stream(
    server: RunningServer, payload: bytes, condition: str
) -> None:
    comp, result = await component(server)
    assert result == "ok"
    alice = await login(server, "alice@localhost/phone", PASSWORD)
    try:
        assert condition_of(await raw(server, payload)) == condition
        assert "other.localhost" not in server.server.components.connected
        got: asyncio.Queue[object] = asyncio.Queue()
        comp.add_event_handler("message", got.put_nowait)
        alice.send_message(mto=f"bot@{GATEWAY}", mbody="still routed")
        await asyncio.wait_for(got.get(), 5)
    finally:
        await close(alice)
        await close(comp)


async def test_no_handshake_in_time_is_a_connection_timeout(server: RunningServer) -> None:
    output = await raw(server, HEADER.format(to="other.localhost").encode())
    assert condition_of(output) == "connection-timeout"
