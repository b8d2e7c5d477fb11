"""RFC 6121 §3-§4 with two slixmpp users: subscribe, approve, see each other, no leaks."""

from __future__ import annotations

import asyncio

from slixmpp import ClientXMPP

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "presence-password"


async def online(server: RunningServer, jid: str) -> ClientXMPP:
    await server.server.accounts.create(JID.parse(jid.split("/")[0]), PASSWORD)
    client = await login(server, jid, PASSWORD)
    client.roster.auto_authorize = None  # None: leave requests to the test (False rejects)
    client.roster.auto_subscribe = False
    await client.get_roster(timeout=5)
    return client


async def test_subscribe_approve_and_see_each_other(server: RunningServer) -> None:
    alice = await online(server, "alice@localhost/a")
    bob = await online(server, "bob@localhost/b")
    try:
        bob.send_presence()
        alice.send_presence()
        request = asyncio.ensure_future(bob.wait_until("presence_subscribe", timeout=5))
        alice.send_presence(pto="bob@localhost", ptype="subscribe")
        assert (await request)["from"].bare == "alice@localhost"

        bob_available = asyncio.ensure_future(alice.wait_until("got_online", timeout=5))
        bob.send_presence(pto="alice@localhost", ptype="subscribed")
        assert (await bob_available)["from"].full == "bob@localhost/b"
        # The roster push (subscription "to") is sent before the presence that follows it.
        assert alice.client_roster["bob@localhost"]["to"]

        # Mutual: bob subscribes back, alice approves; bob then sees alice.
        alice_request = asyncio.ensure_future(alice.wait_until("presence_subscribe", timeout=5))
        bob.send_presence(pto="alice@localhost", ptype="subscribe")
        await alice_request
        alice_available = asyncio.ensure_future(bob.wait_until("got_online", timeout=5))
        alice.send_presence(pto="bob@localhost", ptype="subscribed")
        assert (await alice_available)["from"].full == "alice@localhost/a"

        bob_offline = asyncio.ensure_future(alice.wait_until("got_offline", timeout=5))
        await close(bob)
        assert (await bob_offline)["from"].bare == "bob@localhost"
    finally:
        await close(alice)
        await close(bob)


async def test_presence_is_not_leaked_to_a_non_subscriber(server: RunningServer) -> None:
    carol = await online(server, "carol@localhost/c")
    eve = await online(server, "eve@localhost/e")
    try:
        leaked: list[str] = []
        eve.add_event_handler("presence_available", lambda p: leaked.append(str(p["from"])))
        eve.send_presence(pto="carol@localhost", ptype="probe")
        carol.send_presence()
        eve.send_presence()
        # A round trip through the server after the presences: anything leaked is in by now.
        await eve.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        await carol.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        await eve.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        assert not [j for j in leaked if j.startswith("carol@")]
    finally:
        await close(carol)
        await close(eve)
