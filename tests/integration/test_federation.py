"""Federation between two Heron servers on loopback (RFC 6120 s2s, XEP-0220, XEP-0178).

Users on a.test and b.test (slixmpp over TLS) subscribe to each other and chat; once with
self-signed certificates (dialback proves the domains) and once with certificates from a
test CA that both trust (SASL EXTERNAL). A peer that claims a domain it did not prove is cut
off, and an unreachable domain comes back as remote-server-not-found.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slixmpp import JID as SJID
from slixmpp import ClientXMPP

from heron.app import RunningServer, start
from heron.jid import JID
from heron.stream.s2s import S2SIncoming
from heron.transport.s2s import S2SListener
from tests.certs import issue, make_ca
from tests.conftest import make_config
from tests.dnsserver import DnsServer
from tests.hostile.test_xml_attacks import condition_of
from tests.integration.clients import close, instant_room, login
from tests.rawclient import RawClient
from tests.tcpcount import settle_to

PASSWORD = "federation-password"
S2S_HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='{from_}' to='{to}' version='1.0'>"
)


def listeners() -> list[dict[str, object]]:
    return [
        {"kind": "c2s", "host": "127.0.0.1", "port": 0},
        {"kind": "s2s", "host": "127.0.0.1", "port": 0},
    ]


async def pair(
    tmp_path: Path, hosts: dict[str, dict[str, object]], s2s: dict[str, object]
) -> tuple[RunningServer, RunningServer]:
    servers = []
    for domain in ("a.test", "b.test"):
        config = make_config(
            tmp_path / domain,
            hosts={domain: hosts.get(domain, {})},
            listeners=listeners(),
            s2s=s2s,
        )
        running = await start(config)
        await running.server.accounts.create(JID.parse(f"user@{domain}"), PASSWORD)
        servers.append(running)
    a, b = servers
    # Static peers instead of DNS; the ports are known only now.
    assert a.connector is not None
    assert b.connector is not None
    a.connector.peers["b.test"] = f"127.0.0.1:{b.ports['s2s']}"
    b.connector.peers["a.test"] = f"127.0.0.1:{a.ports['s2s']}"
    return a, b


async def online(server: RunningServer, jid: str) -> ClientXMPP:
    client = await login(server, jid, PASSWORD)
    client.roster.auto_authorize = None
    client.roster.auto_subscribe = False
    await client.get_roster(timeout=5)
    client.send_presence()
    return client


async def befriend_and_chat(a: RunningServer, b: RunningServer) -> None:
    alice = await online(a, "user@a.test/phone")
    bob = await online(b, "user@b.test/desk")
    try:
        asked = asyncio.ensure_future(bob.wait_until("presence_subscribe", timeout=15))
        alice.send_presence(pto="user@b.test", ptype="subscribe")
        assert (await asked)["from"].bare == "user@a.test"
        seen = asyncio.ensure_future(alice.wait_until("got_online", timeout=15))
        bob.send_presence(pto="user@a.test", ptype="subscribed")
        assert (await seen)["from"].full == "user@b.test/desk"
        assert alice.client_roster["user@b.test"]["to"]

        got = asyncio.ensure_future(bob.wait_until("message", timeout=15))
        alice.send_message(mto="user@b.test", mbody="hello across servers", mtype="chat")
        message = await got
        assert message["body"] == "hello across servers"
        assert message["from"].full == "user@a.test/phone"
        back = asyncio.ensure_future(alice.wait_until("message", timeout=15))
        bob.send_message(mto=message["from"], mbody="hello back", mtype="chat")
        assert (await back)["body"] == "hello back"
    finally:
        await close(alice)
        await close(bob)


def incoming(server: RunningServer) -> list[S2SIncoming]:
    return [
        stream
        for listener in server.listeners
        if isinstance(listener, S2SListener)
        for stream in listener.streams
    ]


@pytest.fixture
async def dialback_pair(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    a, b = await pair(tmp_path, {}, {})
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def test_users_on_two_servers_befriend_and_chat_over_dialback(
    dialback_pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = dialback_pair
    await befriend_and_chat(a, b)
    assert any(("a.test", "b.test") in s.authenticated for s in incoming(b))
    assert a.connector is not None
    assert {s.method for s in a.connector.streams} == {"dialback"}
    # XEP-0288: b.test answered over a.test's bidirectional stream; the connection b.test
    # opened only to ask a.test about the dialback key was dropped once not needed.
    assert all(s.bidi for s in a.connector.streams)
    assert await settle_to(1, a.ports["s2s"], b.ports["s2s"]) == 1


async def test_certificates_from_a_trusted_ca_authenticate_with_sasl_external(
    tmp_path: Path,
) -> None:
    ca_path, ca, ca_key = make_ca(tmp_path)
    hosts: dict[str, dict[str, object]] = {}
    for domain in ("a.test", "b.test"):
        cert, key = issue(tmp_path, domain, ca, ca_key)
        hosts[domain] = {"cert": str(cert), "key": str(key)}
    s2s = {"require_valid_certificates": True, "ca_file": str(ca_path)}
    a, b = await pair(tmp_path, hosts, s2s)
    try:
        a.certificates["a.test"] = b.certificates["b.test"] = ca_path  # clients trust the CA
        await befriend_and_chat(a, b)
        assert a.connector is not None
        assert {s.method for s in a.connector.streams} == {"EXTERNAL"}
        assert any(("a.test", "b.test") in s.authenticated for s in incoming(b))
        # XEP-0288: b.test's answers came back over a.test's stream; one connection.
        assert await settle_to(1, a.ports["s2s"], b.ports["s2s"]) == 1
    finally:
        await a.stop()
        await b.stop()


async def test_a_user_of_another_server_talks_in_a_room(
    dialback_pair: tuple[RunningServer, RunningServer],
) -> None:
    """The MUC service (conference.a.test) has no certificate of its own: its streams to
    b.test, and its answers to b.test's dialback questions, use its host's."""
    a, b = dialback_pair
    assert b.connector is not None
    b.connector.peers["conference.a.test"] = f"127.0.0.1:{a.ports['s2s']}"
    room = SJID("lounge@conference.a.test")
    alice = await login(a, "user@a.test/phone", PASSWORD, plugins=("xep_0045",))
    bob = await login(b, "user@b.test/desk", PASSWORD, plugins=("xep_0045",))
    try:
        await alice.plugin["xep_0045"].join_muc_wait(room, "Alice", timeout=5)
        await instant_room(alice, room)  # a new room opens once configured (XEP-0045 §10.1)
        own, _subject, occupants, _history = await bob.plugin["xep_0045"].join_muc_wait(
            room, "Bob", timeout=15
        )
        assert own["muc"]["role"] == "participant"
        assert "Alice" in [p["muc"]["nick"] for p in occupants]
        got = asyncio.ensure_future(bob.wait_until("groupchat_message", timeout=15))
        alice.send_message(mto=room, mbody="welcome", mtype="groupchat")
        assert (await got)["from"] == SJID(f"{room}/Alice")
        heard = asyncio.ensure_future(alice.wait_until("groupchat_message", timeout=15))
        bob.send_message(mto=room, mbody="thanks", mtype="groupchat")
        message = await heard
        assert (message["body"], message["from"]) == ("thanks", SJID(f"{room}/Bob"))
    finally:
        await close(alice)
        await close(bob)
    # b.test's stream to the room's service is bidirectional (XEP-0288): the room answered
    # over it rather than over a stream of its own.
    assert b.connector is not None
    assert {(s.remote, s.method, s.bidi) for s in b.connector.streams} == {
        ("conference.a.test", "dialback", True)
    }
    assert any(("b.test", "conference.a.test") in s.authenticated for s in incoming(a))


async def s2s_raw(server: RunningServer, domain: str) -> RawClient:
    """A peer connection to ``server`` pretending to be ``evil.test``, after STARTTLS."""
    raw = await RawClient.connect(server.ports["s2s"])
    await raw.send(S2S_HEADER.format(from_="evil.test", to=domain))
    await raw.expect(r"<starttls")
    await raw.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    await raw.expect(r"<proceed[^>]*/>")
    context = ssl.create_default_context(cafile=str(server.certificates[domain]))
    await raw.writer.start_tls(context, server_hostname=domain)
    raw.buffer = ""
    await raw.send(S2S_HEADER.format(from_="evil.test", to=domain))
    await raw.expect(r"</stream:features>")
    return raw


async def test_a_domain_not_proven_is_refused(
    dialback_pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = dialback_pair
    raw = await s2s_raw(b, "b.test")
    try:
        # A dialback key the real a.test never issued: a.test says so, b.test refuses.
        await raw.send("<db:result from='a.test' to='b.test'>00ff00ff</db:result>")
        answer = await raw.expect(r"<(db:)?result [^>]*type=.(valid|invalid).", timeout=15)
        assert answer.group(2) == "invalid"
        await raw.send(
            "<message from='user@a.test/x' to='user@b.test' type='chat'><body>forged</body>"
            "</message>"
        )
        assert condition_of(await raw.closed()) == "invalid-from"
    finally:
        raw.close()
    # The real servers still federate.
    await befriend_and_chat(a, b)


async def test_unreachable_domain_is_remote_server_not_found(
    dialback_pair: tuple[RunningServer, RunningServer],
) -> None:
    a, _b = dialback_pair
    assert a.connector is not None
    a.connector.peers["nowhere.test"] = "127.0.0.1:1"  # nothing listens there
    alice = await online(a, "user@a.test/phone")
    try:
        bounced = asyncio.ensure_future(alice.wait_until("message_error", timeout=15))
        alice.send_message(mto="someone@nowhere.test", mbody="anyone?", mtype="chat")
        error = await bounced
        assert error["error"]["condition"] == "remote-server-not-found"
        assert re.match(r"someone@nowhere\.test", str(error["from"]))
    finally:
        await close(alice)


async def test_direct_tls_peers_found_by_srv(tmp_path: Path) -> None:
    """XEP-0368: `_xmpps-server._tcp` records lead to a TLS-from-the-first-byte port."""
    dns = DnsServer({})
    await dns.start()
    servers = []
    try:
        for domain in ("a.test", "b.test"):
            config = make_config(
                tmp_path / domain,
                hosts={domain: {}},
                listeners=[
                    {"kind": "c2s", "host": "127.0.0.1", "port": 0},
                    {"kind": "s2s_tls", "host": "127.0.0.1", "port": 0},
                ],
                s2s={"resolver": f"127.0.0.1:{dns.port}"},
            )
            running = await start(config)
            servers.append(running)
            await running.server.accounts.create(JID.parse(f"user@{domain}"), PASSWORD)
            dns.records[(f"_xmpps-server._tcp.{domain}.", "SRV")] = [
                f"0 5 {running.ports['s2s_tls']} xmpp.{domain}."
            ]
            dns.records[(f"_xmpp-server._tcp.{domain}.", "SRV")] = ["0 0 0 ."]  # none
            dns.records[(f"xmpp.{domain}.", "A")] = ["127.0.0.1"]
        a, b = servers
        await befriend_and_chat(a, b)
        assert a.connector is not None
        assert all(s.tls is not None for s in a.connector.streams)
        assert any(("a.test", "b.test") in s.authenticated for s in incoming(b))
    finally:
        for running in servers:
            await running.stop()
        dns.stop()


async def test_denied_domains_are_not_federated_with(tmp_path: Path) -> None:
    a, b = await pair(tmp_path, {}, {"deny": ["b.test"]})
    try:
        alice = await online(a, "user@a.test/phone")
        try:
            bounced = asyncio.ensure_future(alice.wait_until("message_error", timeout=15))
            alice.send_message(mto="user@b.test", mbody="hi", mtype="chat")
            assert (await bounced)["error"]["condition"] == "remote-server-not-found"
        finally:
            await close(alice)
        # b.test may not prove itself to a.test either (its dialback is refused).
        bob = await online(b, "user@b.test/desk")
        try:
            bounced = asyncio.ensure_future(bob.wait_until("message_error", timeout=15))
            bob.send_message(mto="user@a.test", mbody="hi", mtype="chat")
            assert (await bounced)["error"]["condition"] == "remote-server-not-found"
        finally:
            await close(bob)
    finally:
        await a.stop()
        await b.stop()
