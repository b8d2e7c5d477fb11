"""XEP-0012 last activity: server uptime; an account's last logout, to subscribers only."""

from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "last-activity-pw"

pytestmark = pytest.mark.both_engines


async def test_last_activity_of_a_contact_and_refusal_to_strangers(
    server: RunningServer,
) -> None:
    for user in ("alice", "bob", "eve"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    alice = await login(server, "alice@localhost/a", PASSWORD)
    bob = await login(server, "bob@localhost/b", PASSWORD)
    eve = await login(server, "eve@localhost/e", PASSWORD)
    for client in (alice, bob, eve):
        client.register_plugin("xep_0012")
        client.roster.auto_authorize = None
        client.roster.auto_subscribe = False
    try:
        uptime = await bob.plugin["xep_0012"].get_last_activity("localhost", timeout=5)
        assert int(uptime["last_activity"]["seconds"]) >= 0

        alice.send_presence()
        bob.send_presence()  # available: presence to his bare JID reaches him (RFC 6121 §8.5.2.1.1)
        request = asyncio.ensure_future(alice.wait_until("presence_subscribe", timeout=5))
        bob.send_presence(pto="alice@localhost", ptype="subscribe")
        await request
        online = asyncio.ensure_future(bob.wait_until("got_online", timeout=5))
        alice.send_presence(pto="bob@localhost", ptype="subscribed")
        await online

        offline = asyncio.ensure_future(bob.wait_until("got_offline", timeout=5))
        alice.send_presence(ptype="unavailable", pstatus="gone fishing")
        await offline
        last = await bob.plugin["xep_0012"].get_last_activity("alice@localhost", timeout=5)
        assert int(last["last_activity"]["seconds"]) >= 0
        assert last["last_activity"]["status"] == "gone fishing"

        with pytest.raises(IqError) as info:
            await eve.plugin["xep_0012"].get_last_activity("alice@localhost", timeout=5)
        assert info.value.condition == "forbidden"
    finally:
        for client in (alice, bob, eve):
            await close(client)
