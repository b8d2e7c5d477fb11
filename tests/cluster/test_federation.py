"""Federation from a cluster: two Heron nodes serve one domain and Prosody (Debian's
package) talks to users on both.

Prosody finds the domain through DNS (an SRV record naming node a only), so its stream
for the domain lands on node a, which hands what is for a user on node b over the bus.
Node b opens its own stream to Prosody; Prosody checks that stream's dialback key by
asking the domain's authoritative server, which is node a: node a can confirm a key node b
made only because every node derives the key from the same shared secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from heron.app import RunningServer, start
from heron.config import config_from_dict
from heron.jid import JID
from tests.cluster.test_nodes import cluster, until
from tests.dnsserver import DnsServer
from tests.integration.clients import close, login
from tests.interop.test_prosody_federation import (
    PASSWORD,
    PROSODY,
    Prosody,
    Trust,
    prosody,
    prosody_user,
)

__all__ = ["cluster", "prosody"]  # fixtures
HERON = "heron.example"
MODULES = ["disco", "ping", "roster"]


@pytest.fixture
def trust() -> Trust:
    """Self-signed certificates: dialback proves the domain (the shared secret's case)."""
    return Trust(None, {})


@pytest.fixture
async def nodes(
    cluster: Callable[[str], dict[str, Any]], prosody: tuple[Prosody, DnsServer]
) -> AsyncIterator[list[RunningServer]]:
    peer, dns = prosody
    running: list[RunningServer] = []
    try:
        for name in ("a", "b"):
            table = cluster(name)
            table["hosts"] = {HERON: {"modules": MODULES}}
            table["listeners"] = [
                {"kind": "c2s", "host": "127.0.0.1", "port": 0},
                {"kind": "s2s", "host": "127.0.0.1", "port": 0},
            ]
            table["s2s"] = {"peers": {PROSODY: f"127.0.0.1:{peer.s2s}"}}
            running.append(await start(config_from_dict(table, "test")))
        for user in ("h1", "h2"):
            await running[0].server.accounts.create(JID.parse(f"{user}@{HERON}"), PASSWORD)
        s2s_a = running[0].ports["s2s"]
        dns.records[(f"_xmpp-server._tcp.{HERON}.", "SRV")] = [f"0 5 {s2s_a} {HERON}."]
        dns.records[(f"{HERON}.", "A")] = ["127.0.0.1"]
        yield running
    finally:
        for node in running:
            await node.stop()


async def test_prosody_talks_with_users_on_both_nodes(
    nodes: list[RunningServer], prosody: tuple[Prosody, DnsServer]
) -> None:
    a, b = nodes
    peer, _dns = prosody
    h1 = await login(a, f"h1@{HERON}/one", PASSWORD)
    h2 = await login(b, f"h2@{HERON}/two", PASSWORD)
    theirs = await prosody_user(peer)
    try:
        for client in (h1, h2):
            client.send_presence()
        full_h2 = JID.parse(f"h2@{HERON}/two")
        await until(lambda: full_h2 in a.server.sessions.remote, 10, "node a sees h2")
        inbox: list[Any] = []
        theirs.add_event_handler("message", inbox.append)
        # Outgoing from each node: node b's own stream is verified through node a.
        h1.send_message(mto=f"puser@{PROSODY}", mbody="from node a", mtype="chat")
        h2.send_message(mto=f"puser@{PROSODY}", mbody="from node b", mtype="chat")
        await until(lambda: len(inbox) >= 2, 30, "Prosody's user gets both messages")
        assert sorted(str(m["body"]) for m in inbox) == ["from node a", "from node b"]
        assert {str(m["from"]) for m in inbox} == {f"h1@{HERON}/one", f"h2@{HERON}/two"}
        # Incoming: Prosody's stream lands on node a; h2 on node b still gets its message.
        got_h1 = asyncio.ensure_future(h1.wait_until("message", timeout=30))
        got_h2 = asyncio.ensure_future(h2.wait_until("message", timeout=30))
        theirs.send_message(mto=f"h1@{HERON}/one", mbody="to node a", mtype="chat")
        theirs.send_message(mto=f"h2@{HERON}/two", mbody="to node b", mtype="chat")
        assert (await got_h1)["body"] == "to node a"
        message = await got_h2
        assert message["body"] == "to node b"
        assert message["from"].bare == f"puser@{PROSODY}"
    finally:
        await close(h1)
        await close(h2)
        await close(theirs)
    assert b.connector is not None
    assert {s.method for s in b.connector.streams} == {"dialback"}
    log = await asyncio.to_thread(peer.log.read_text)
    assert HERON in log
