"""RFC 6121 §3-§4 with two slixmpp users: subscribe, approve, see each other, no leaks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slixmpp import ClientXMPP

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "presence-password"

pytestmark = pytest.mark.both_engines


async def online(server: RunningServer, jid: str) -> ClientXMPP:
    await server.server.accounts.create(JID.parse(jid.split("/")[0]), PASSWORD)
    client = await login(server, jid, PASSWORD)
    client.roster.auto_authorize = None  # None: leave requests to the test (False rejects)
    client.roster.auto_subscribe = False
    await client.get_roster(timeout=5)
    return client


async def available(client: ClientXMPP) -> None:
    """Send initial presence and wait for it to come back (RFC 6121 §4.2.2)."""
    echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def own(presence: object) -> None:
        if str(presence["from"]) == str(client.boundjid) and not echoed.done():  # type: ignore[index]
            echoed.set_result(None)

    client.add_event_handler("presence_available", own)
    try:
        client.send_presence()
        await asyncio.wait_for(echoed, 5)
    finally:
        client.del_event_handler("presence_available", own)


async def test_own_presence_comes_back_to_every_resource(server: RunningServer) -> None:
    """§4.2.2, §4.4.2: the sender is among the user's available resources."""
    phone = await online(server, "kim@localhost/phone")
    laptop = await login(server, "kim@localhost/laptop", PASSWORD)
    try:
        await available(phone)
        told = asyncio.ensure_future(phone.wait_until("presence_available", timeout=5))
        await available(laptop)
        assert (await told)["from"].full == "kim@localhost/laptop"
        await available(phone)  # a later broadcast (§4.4.2) comes back as well
    finally:
        await close(phone)
        await close(laptop)


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


async def test_directed_presence_is_undone_on_logout(server: RunningServer) -> None:
    """RFC 6121 §4.6: a non-subscriber told directly hears when the session ends."""
    frank = await online(server, "frank@localhost/f")
    grace = await online(server, "grace@localhost/g")
    heidi = await online(server, "heidi@localhost/h")
    try:
        await available(grace)
        await available(heidi)
        await available(frank)
        told = asyncio.ensure_future(grace.wait_until("presence_available", timeout=5))
        frank.send_presence(pto="grace@localhost/g", pstatus="just for you")
        assert (await told)["from"].full == "frank@localhost/f"

        # Directed unavailable takes heidi off the list: she is not told again at logout.
        heidi_told = asyncio.ensure_future(heidi.wait_until("presence_available", timeout=5))
        frank.send_presence(pto="heidi@localhost/h")
        await heidi_told
        frank.send_presence(pto="heidi@localhost/h", ptype="unavailable")
        await frank.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        heidi_heard: list[str] = []
        heidi.add_event_handler(
            "presence_unavailable", lambda p: heidi_heard.append(str(p["from"]))
        )

        gone = asyncio.ensure_future(grace.wait_until("presence_unavailable", timeout=5))
        await close(frank)
        assert (await gone)["from"].full == "frank@localhost/f"
        await heidi.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        assert heidi_heard == []
    finally:
        await close(frank)
        await close(grace)
        await close(heidi)


async def test_pre_approval_and_redelivered_requests(server: RunningServer) -> None:
    """§3.4 pre-approval answers a later request at once; §3.1.3 pending requests wait."""
    ivy = await online(server, "ivy@localhost/i")
    jack = await online(server, "jack@localhost/j")
    try:
        ivy.send_presence()
        jack.send_presence()
        # Ivy pre-approves jack; jack's request is then approved without asking her.
        ivy.send_presence(pto="jack@localhost", ptype="subscribed")
        await ivy.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        asked: list[str] = []
        ivy.add_event_handler("presence_subscribe", lambda p: asked.append(str(p["from"])))
        ivy_seen = asyncio.ensure_future(jack.wait_until("got_online", timeout=5))
        jack.send_presence(pto="ivy@localhost", ptype="subscribe")
        assert (await ivy_seen)["from"].full == "ivy@localhost/i"
        await ivy.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        assert asked == []

        # Ivy asks jack while he is offline; he gets the request when he comes back.
        await close(jack)
        ivy.send_presence(pto="jack@localhost", ptype="subscribe")
        await ivy.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        jack = await login(server, "jack@localhost/again", PASSWORD)
        jack.roster.auto_authorize = None
        request = asyncio.ensure_future(jack.wait_until("presence_subscribe", timeout=5))
        jack.send_presence()
        assert (await request)["from"].bare == "ivy@localhost"
    finally:
        await close(ivy)
        await close(jack)


async def test_a_subscription_between_local_accounts_writes_both_rosters_together(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transaction for the two rosters a local subscription changes (§3.1.2, §3.1.3)."""
    roster: Any = server.server.managers["localhost"].modules["roster"]
    written: list[list[tuple[str, str, str, bool, bool]]] = []
    real = roster.store.put_many

    async def put_many(changes: Any, limit: int) -> list[int]:
        written.append([(u, i.contact, i.subscription, i.ask, i.pending_in) for u, _, i in changes])
        versions: list[int] = await real(changes, limit)
        return versions

    monkeypatch.setattr(roster.store, "put_many", put_many)
    alice = await online(server, "dana@localhost/a")
    bob = await online(server, "finn@localhost/b")
    try:
        await available(bob)
        await available(alice)
        request = asyncio.ensure_future(bob.wait_until("presence_subscribe", timeout=5))
        alice.send_presence(pto="finn@localhost", ptype="subscribe")
        await request
        assert written == [
            [
                ("dana", "finn@localhost", "none", True, False),
                ("finn", "dana@localhost", "none", False, True),
            ]
        ]
        pushed = asyncio.ensure_future(alice.wait_until("roster_update", timeout=5))
        bob.send_presence(pto="dana@localhost", ptype="subscribed")
        await pushed
        assert written[1] == [
            ("finn", "dana@localhost", "from", False, False),
            ("dana", "finn@localhost", "to", False, False),
        ]
    finally:
        await close(alice)
        await close(bob)


async def test_a_blocked_subscription_request_changes_only_the_senders_roster(
    server: RunningServer,
) -> None:
    """RFC 6121 §3.1.2 on the sender's side, XEP-0191 §3.6 on the blocker's: the request is
    recorded as pending out for Mallory; Alice's roster never hears of it (the two-roster
    write falls back to the sender's side alone)."""
    alice = await online(server, "alice@localhost/a")
    mallory = await online(server, "mallory@localhost/m")
    alice.register_plugin("xep_0191")
    try:
        await alice.plugin["xep_0191"].block("mallory@localhost", timeout=5)
        pushed = asyncio.ensure_future(mallory.wait_until("roster_update", timeout=5))
        mallory.send_presence(pto="alice@localhost", ptype="subscribe")
        await pushed
        roster: Any = server.server.managers["localhost"].modules["roster"]
        sent = await roster.store.item("mallory", "localhost", "alice@localhost")
        assert sent is not None
        assert sent.ask
        assert await roster.store.item("alice", "localhost", "mallory@localhost") is None
    finally:
        await close(alice)
        await close(mallory)
