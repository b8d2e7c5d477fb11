"""External components (XEP-0114) with slixmpp's ComponentXMPP, a component Heron did not write.

The handshake with the right and a wrong secret, stanzas both ways between a c2s user and the
component, the component in the host's disco#items, a second connection refused (or, when
configured, replacing the first), stanzas to an offline component bounced with
service-unavailable, and a remote server's user reaching the component over s2s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from slixmpp import ComponentXMPP
from slixmpp.exceptions import IqError

from heron.app import RunningServer, start
from heron.jid import JID
from tests.conftest import make_config
from tests.integration.clients import close, login

PASSWORD = "component-test-password"
SECRET = "a-component-secret-of-some-length"
GATEWAY = "gateway.localhost"


def listeners() -> list[dict[str, object]]:
    return [
        {"kind": "c2s", "host": "127.0.0.1", "port": 0},
        {"kind": "component", "host": "127.0.0.1", "port": 0},
    ]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    config = make_config(
        tmp_path / "data",
        listeners=listeners(),
        components={GATEWAY: {"secret": SECRET}, "spare.localhost": {"secret": SECRET}},
    )
    running = await start(config)
    await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def component(
    server: RunningServer, domain: str = GATEWAY, secret: str = SECRET
) -> tuple[ComponentXMPP, str]:
    """A connected ComponentXMPP and how its connection went ("ok" or the stream error)."""
    comp = ComponentXMPP(domain, secret, "127.0.0.1", server.ports["component"])
    comp.register_plugin("xep_0030")
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def finish(result: Callable[[Any], str]) -> Callable[[Any], None]:
        def handler(arg: Any) -> None:
            if not done.done():
                done.set_result(result(arg))

        return handler

    comp.add_event_handler("session_start", finish(lambda _a: "ok"))
    comp.add_event_handler("stream_error", finish(lambda e: str(e["condition"])))
    comp.add_event_handler("disconnected", finish(lambda _a: "disconnected"))
    comp.connect()
    return comp, await asyncio.wait_for(done, 10)


async def test_handshake_with_the_right_secret(server: RunningServer) -> None:
    comp, result = await component(server)
    try:
        assert result == "ok"
        assert GATEWAY in server.server.components.connected
    finally:
        await close(comp)


async def test_handshake_with_a_wrong_secret_is_not_authorized(server: RunningServer) -> None:
    comp, result = await component(server, secret="not-the-secret-at-all")
    await close(comp)
    assert result == "not-authorized"
    assert GATEWAY not in server.server.components.connected


async def test_unknown_domain_is_host_unknown(server: RunningServer) -> None:
    comp, result = await component(server, domain="other.localhost")
    await close(comp)
    assert result == "host-unknown"


async def test_messages_and_iqs_both_ways(server: RunningServer) -> None:
    comp, result = await component(server)
    assert result == "ok"
    alice = await login(server, "alice@localhost/phone", PASSWORD)
    try:
        at_component: asyncio.Queue[Any] = asyncio.Queue()
        at_alice: asyncio.Queue[Any] = asyncio.Queue()
        comp.add_event_handler("message", at_component.put_nowait)
        alice.add_event_handler("message", at_alice.put_nowait)
        alice.send_presence()

        alice.send_message(mto=f"someone@{GATEWAY}", mbody="to the gateway", mtype="chat")
        got = await asyncio.wait_for(at_component.get(), 5)
        assert got["body"] == "to the gateway"
        assert got["from"].full == "alice@localhost/phone"
        assert got["to"].full == f"someone@{GATEWAY}"

        # The component may speak from any JID at its domain.
        comp.send_message(
            mto="alice@localhost/phone",
            mfrom=f"bob@{GATEWAY}/irc",
            mbody="from the gateway",
            mtype="chat",
        )
        back = await asyncio.wait_for(at_alice.get(), 5)
        assert back["body"] == "from the gateway"
        assert back["from"].full == f"bob@{GATEWAY}/irc"

        # An IQ from the user to the component is answered by the component (slixmpp disco).
        info = await alice.plugin["xep_0030"].get_info(jid=GATEWAY, timeout=5)
        assert info["type"] == "result"
        # An IQ from the component to the server is answered by the server.
        host_info = await comp.plugin["xep_0030"].get_info(
            jid="localhost", ifrom=GATEWAY, timeout=5
        )
        assert "urn:xmpp:ping" in host_info["disco_info"]["features"]
    finally:
        await close(alice)
        await close(comp)


async def test_component_cannot_speak_for_another_domain(server: RunningServer) -> None:
    comp, result = await component(server)
    assert result == "ok"
    errors: asyncio.Queue[str] = asyncio.Queue()
    comp.add_event_handler("stream_error", lambda e: errors.put_nowait(str(e["condition"])))
    comp.send_message(mto="alice@localhost", mfrom="mallory@localhost", mbody="spoofed")
    try:
        assert await asyncio.wait_for(errors.get(), 5) == "invalid-from"
    finally:
        await close(comp)


async def test_components_are_in_the_hosts_disco_items(server: RunningServer) -> None:
    alice = await login(server, "alice@localhost/phone", PASSWORD)
    try:
        items = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=5)
        jids = {item[0] for item in items["disco_items"]["items"]}
        assert {GATEWAY, "spare.localhost"} <= jids
    finally:
        await close(alice)


async def test_offline_component_bounces_service_unavailable(server: RunningServer) -> None:
    alice = await login(server, "alice@localhost/phone", PASSWORD)
    try:
        with pytest.raises(IqError) as err:
            await alice.plugin["xep_0030"].get_info(jid=GATEWAY, timeout=5)
        assert err.value.condition == "service-unavailable"
        errors: asyncio.Queue[Any] = asyncio.Queue()
        alice.add_event_handler("message_error", errors.put_nowait)
        alice.send_message(mto=f"x@{GATEWAY}", mbody="anyone there?", mtype="chat")
        bounced = await asyncio.wait_for(errors.get(), 5)
        assert bounced["error"]["condition"] == "service-unavailable"
    finally:
        await close(alice)


async def test_second_connection_is_refused_with_conflict(server: RunningServer) -> None:
    first, result = await component(server)
    assert result == "ok"
    second, second_result = await component(server)
    try:
        assert second_result == "conflict"
        assert server.server.components.connected[GATEWAY] is not None
        # The first still routes.
        alice = await login(server, "alice@localhost/phone", PASSWORD)
        got: asyncio.Queue[Any] = asyncio.Queue()
        first.add_event_handler("message", got.put_nowait)
        alice.send_message(mto=GATEWAY, mbody="still there?")
        assert (await asyncio.wait_for(got.get(), 5))["body"] == "still there?"
        await close(alice)
    finally:
        await close(second)
        await close(first)


async def test_second_connection_replaces_when_configured(tmp_path: Path) -> None:
    config = make_config(
        tmp_path / "data",
        listeners=listeners(),
        components={GATEWAY: {"secret": SECRET, "replace": True}},
    )
    running = await start(config)
    try:
        first, result = await component(running)
        assert result == "ok"
        replaced: asyncio.Queue[str] = asyncio.Queue()
        first.add_event_handler("stream_error", lambda e: replaced.put_nowait(str(e["condition"])))
        second, second_result = await component(running)
        assert second_result == "ok"
        assert await asyncio.wait_for(replaced.get(), 5) == "conflict"
        await close(first)
        await close(second)
    finally:
        await running.stop()


async def test_a_remote_servers_user_reaches_the_component_over_s2s(tmp_path: Path) -> None:
    servers: list[RunningServer] = []
    for domain, components in (("a.test", {"gw.a.test": {"secret": SECRET}}), ("b.test", {})):
        config = make_config(
            tmp_path / domain,
            hosts={domain: {}},
            listeners=[*listeners(), {"kind": "s2s", "host": "127.0.0.1", "port": 0}],
            components=components,
        )
        running = await start(config)
        servers.append(running)
        await running.server.accounts.create(JID.parse(f"user@{domain}"), PASSWORD)
    a, b = servers
    assert a.connector is not None
    assert b.connector is not None
    a.connector.peers["b.test"] = f"127.0.0.1:{b.ports['s2s']}"
    for domain in ("a.test", "gw.a.test"):
        b.connector.peers[domain] = f"127.0.0.1:{a.ports['s2s']}"
    try:
        comp, result = await component(a, domain="gw.a.test")
        assert result == "ok"
        user = await login(b, "user@b.test/desk", PASSWORD)
        at_component: asyncio.Queue[Any] = asyncio.Queue()
        at_user: asyncio.Queue[Any] = asyncio.Queue()
        comp.add_event_handler("message", at_component.put_nowait)
        user.add_event_handler("message", at_user.put_nowait)
        user.send_presence()
        user.send_message(mto="bot@gw.a.test", mbody="over federation", mtype="chat")
        got = await asyncio.wait_for(at_component.get(), 15)
        assert got["body"] == "over federation"
        assert got["from"].full == "user@b.test/desk"
        comp.send_message(
            mto="user@b.test/desk", mfrom="bot@gw.a.test", mbody="and back", mtype="chat"
        )
        back = await asyncio.wait_for(at_user.get(), 15)
        assert back["body"] == "and back"
        assert back["from"].full == "bot@gw.a.test"
        await close(user)
        await close(comp)
    finally:
        await b.stop()
        await a.stop()
