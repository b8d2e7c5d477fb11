"""XEP-0352 with slixmpp: an inactive client gets messages at once, presence only later,
collapsed to the latest, in order."""

from __future__ import annotations

import asyncio

from slixmpp import ClientXMPP

from heron.app import RunningServer
from heron.jid import JID
from heron.modules.csi import CsiModule
from tests.integration.clients import close, login

PASSWORD = "csi-password"


async def friends(server: RunningServer) -> tuple[ClientXMPP, ClientXMPP]:
    for user in ("alice", "bob"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    alice = await login(server, "alice@localhost/a", PASSWORD, plugins=("xep_0352",))
    bob = await login(server, "bob@localhost/b", PASSWORD, plugins=("xep_0352",))
    for client in (alice, bob):
        client.roster.auto_authorize = True
        client.roster.auto_subscribe = True
        await client.get_roster(timeout=5)
        client.send_presence()
    subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def from_alice(presence: object) -> None:
        # Bob's own presence comes back to him too (RFC 6121 §4.2.2): wait for alice's.
        if str(presence["from"].bare) == "alice@localhost" and not subscribed.done():  # type: ignore[index]
            subscribed.set_result(None)

    bob.add_event_handler("got_online", from_alice)
    alice.send_presence(pto="bob@localhost", ptype="subscribe")
    await asyncio.wait_for(subscribed, 10)
    bob.del_event_handler("got_online", from_alice)
    return alice, bob


async def test_inactive_client_gets_presence_later_and_messages_at_once(
    server: RunningServer,
) -> None:
    alice, bob = await friends(server)
    try:
        assert bob.plugin["xep_0352"].enabled  # the server advertised CSI
        seen: list[str] = []
        bob.add_event_handler(
            "presence_available", lambda p: seen.append(f"presence {p['status']}")
        )
        bob.add_event_handler("message", lambda m: seen.append(f"message {m['body']}"))
        bob.plugin["xep_0352"].send_inactive()
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)  # <inactive/> is in

        for status in ("busy", "lunch", "back soon"):
            alice.send_presence(pstatus=status)
        # Once alice's ping is answered the server has handled her presences. (Pinging bob
        # would flush: an IQ never waits, and what was held goes out before it.)
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        csi = server.server.managers["localhost"].modules["csi"]
        assert isinstance(csi, CsiModule)
        held = list(csi.held[JID.parse("bob@localhost/b")].items.values())
        assert len(held) == 1  # collapsed to the latest
        assert held[0].child_text("status", "jabber:client") == "back soon"
        assert seen == []

        got = asyncio.ensure_future(bob.wait_until("message", timeout=5))
        alice.send_message(mto="bob@localhost", mbody="urgent", mtype="chat")
        await got
        # What was held comes first, collapsed to the latest presence, then the message.
        assert seen == ["presence back soon", "message urgent"]

        alice.send_presence(pstatus="gone again")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        flushed = asyncio.ensure_future(bob.wait_until("presence_available", timeout=5))
        bob.plugin["xep_0352"].send_active()
        await flushed
        assert seen[-1] == "presence gone again"
    finally:
        await close(alice)
        await close(bob)
