"""XEP-0045 with slixmpp's xep_0045 plugin: join with status codes, history and subject,
talk, change nick, private messages, leave; the errors for a taken nick and outsiders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from slixmpp import JID as SJID
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream import ET

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, instant_room, login

PASSWORD = "muc-password"

pytestmark = pytest.mark.both_engines


ROOM = SJID("lounge@conference.localhost")


@pytest.fixture
async def muc_server(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    running = await start(config_factory(hosts={"localhost": {"modules": {"muc": True}}}))
    for user in ("alice", "bob", "carol"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def member(server: RunningServer, user: str) -> ClientXMPP:
    client = await login(server, f"{user}@localhost/x", PASSWORD, plugins=("xep_0045",))
    client.send_presence()
    return client


async def test_rooms_join_talk_rename_whisper_and_leave(muc_server: RunningServer) -> None:
    alice = await member(muc_server, "alice")
    bob = await member(muc_server, "bob")
    carol = await member(muc_server, "carol")
    muc = alice.plugin["xep_0045"]
    try:
        info = await alice.plugin["xep_0030"].get_info(jid="conference.localhost", timeout=5)
        assert "http://jabber.org/protocol/muc" in info["disco_info"]["features"]

        # Alice creates the room by joining it: owner, moderator, codes 110 and 201.
        own, subject, occupants, history = await muc.join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        codes = {int(s) for s in own["muc"]["status_codes"]}
        assert {110, 201} <= codes
        assert own["muc"]["affiliation"] == "owner"
        assert own["muc"]["role"] == "moderator"
        alice.send_message(mto=ROOM, mbody="first!", mtype="groupchat")
        muc.set_subject(ROOM, "Heron development")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)

        # Bob joins: he sees Alice, gets the history and the subject; Alice sees him.
        bob_seen = asyncio.ensure_future(alice.wait_until(f"muc::{ROOM}::got_online", timeout=5))
        own, subject, occupants, history = await bob.plugin["xep_0045"].join_muc_wait(
            ROOM, "Bob", maxstanzas=10, timeout=5
        )
        assert own["muc"]["role"] == "participant"
        assert subject["subject"] == "Heron development"
        assert [m["body"] for m in history] == ["first!"]
        assert "Alice" in [p["muc"]["nick"] for p in occupants]
        assert (await bob_seen)["muc"]["nick"] == "Bob"

        # A taken nick is a conflict; talking without joining is not acceptable.
        with pytest.raises(PresenceError) as taken:
            await carol.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        assert taken.value.condition == "conflict"
        refused = asyncio.ensure_future(carol.wait_until("message_error", timeout=5))
        carol.send_message(mto=ROOM, mbody="let me in", mtype="groupchat")
        assert (await refused)["error"]["condition"] == "not-acceptable"

        # Group messages reach everyone, from room/nick.
        got = asyncio.ensure_future(bob.wait_until("groupchat_message", timeout=5))
        alice.send_message(mto=ROOM, mbody="hello room", mtype="groupchat")
        message = await got
        assert message["body"] == "hello room"
        assert message["from"] == SJID("lounge@conference.localhost/Alice")

        # Only moderators change the subject.
        denied = asyncio.ensure_future(bob.wait_until("message_error", timeout=5))
        bob.plugin["xep_0045"].set_subject(ROOM, "mine now")
        assert (await denied)["error"]["condition"] == "forbidden"

        # Nick change: everyone learns the new nick (303); PMs go by nick.
        renamed = asyncio.ensure_future(alice.wait_until(f"muc::{ROOM}::got_online", timeout=5))
        await bob.plugin["xep_0045"].set_self_nick(ROOM, "Robert", timeout=5)
        assert (await renamed)["muc"]["nick"] == "Robert"
        whisper = asyncio.ensure_future(bob.wait_until("message", timeout=5))
        alice.send_message(mto=SJID(f"{ROOM}/Robert"), mbody="psst", mtype="chat")
        pm = await whisper
        assert pm["body"] == "psst"
        assert pm["from"] == SJID("lounge@conference.localhost/Alice")

        # Leaving: the others see the occupant go.
        left = asyncio.ensure_future(alice.wait_until(f"muc::{ROOM}::got_offline", timeout=5))
        bob.plugin["xep_0045"].leave_muc(ROOM, "Robert")
        assert (await left)["muc"]["nick"] == "Robert"

        # Logging out leaves every room (the directed presence is undone).
        await carol.plugin["xep_0045"].join_muc_wait(ROOM, "Carol", timeout=5)
        gone = asyncio.ensure_future(alice.wait_until(f"muc::{ROOM}::got_offline", timeout=5))
        await close(carol)
        assert (await gone)["muc"]["nick"] == "Carol"
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_moderators_kick_silence_and_ban(muc_server: RunningServer) -> None:
    alice = await member(muc_server, "alice")
    bob = await member(muc_server, "bob")
    carol = await member(muc_server, "carol")
    muc = alice.plugin["xep_0045"]
    try:
        await muc.join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        await carol.plugin["xep_0045"].join_muc_wait(ROOM, "Carol", timeout=5)

        # A participant may not kick.
        with pytest.raises(IqError) as refused:
            await bob.plugin["xep_0045"].set_role(ROOM, "Carol", "none", timeout=5)
        assert refused.value.condition == "forbidden"

        # Voice: a visitor's messages are refused until voice comes back.
        await muc.set_role(ROOM, "Bob", "visitor", timeout=5)
        silenced = asyncio.ensure_future(bob.wait_until("message_error", timeout=5))
        bob.send_message(mto=ROOM, mbody="can I talk?", mtype="groupchat")
        assert (await silenced)["error"]["condition"] == "forbidden"
        await muc.set_role(ROOM, "Bob", "participant", timeout=5)

        # Kick: Carol is told (307, 110) and leaves; she may come back.
        kicked = asyncio.ensure_future(carol.wait_until(f"muc::{ROOM}::presence", timeout=5))
        await muc.set_role(ROOM, "Carol", "none", reason="calm down", timeout=5)
        notice = await kicked
        assert notice["type"] == "unavailable"
        assert {307, 110} <= {int(c) for c in notice["muc"]["status_codes"]}
        await carol.plugin["xep_0045"].join_muc_wait(ROOM, "Carol", timeout=5)

        # Ban: 301, and joining again is forbidden; the owner can list outcasts.
        banned = asyncio.ensure_future(carol.wait_until(f"muc::{ROOM}::presence", timeout=5))
        await muc.set_affiliation(ROOM, "outcast", jid=SJID("carol@localhost"), timeout=5)
        assert 301 in {int(c) for c in (await banned)["muc"]["status_codes"]}
        with pytest.raises(PresenceError) as barred:
            await carol.plugin["xep_0045"].join_muc_wait(ROOM, "Carol", timeout=5)
        assert barred.value.condition == "forbidden"
        outcasts = await muc.get_affiliation_list(ROOM, "outcast", timeout=5)
        assert [str(j) for j in outcasts] == ["carol@localhost"]
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_configured_rooms_survive_a_restart(
    config_factory: Callable[..., ServerConfig],
) -> None:
    with_muc = {"modules": {"muc": True}}
    config = config_factory(hosts={"localhost": with_muc, "other.localhost": with_muc})
    running = await start(config)
    try:
        for user in ("alice", "bob", "carol"):
            await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        alice = await member(running, "alice")
        try:
            muc = alice.plugin["xep_0045"]
            await muc.join_muc_wait(ROOM, "Alice", timeout=5)
            form = await muc.get_room_config(ROOM, timeout=5)
            values = {
                "muc#roomconfig_persistentroom": True,
                "muc#roomconfig_membersonly": True,
                "muc#roomconfig_passwordprotectedroom": True,
                "muc#roomconfig_roomsecret": "open sesame",
                "muc#roomconfig_roomname": "Lounge",
            }
            form.set_values(values)
            await muc.set_room_config(ROOM, form, timeout=5)
            await muc.set_affiliation(ROOM, "member", jid=SJID("bob@localhost"), timeout=5)
            muc.set_subject(ROOM, "kept across restarts")
            await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        finally:
            await close(alice)
    finally:
        await running.stop()

    running = await start(config)  # the room, its settings and members are still there
    try:
        bob = await member(running, "bob")
        carol = await member(running, "carol")
        try:
            items = await bob.plugin["xep_0030"].get_items(jid="conference.localhost", timeout=5)
            assert "lounge@conference.localhost" in [
                str(i[0]) for i in items["disco_items"]["items"]
            ]
            # The other host's service shares the table, not the room.
            there = await bob.plugin["xep_0030"].get_items(
                jid="conference.other.localhost", timeout=5
            )
            assert not there["disco_items"]["items"]
            info = await bob.plugin["xep_0030"].get_info(jid=ROOM, timeout=5)
            features = info["disco_info"]["features"]
            assert {"muc_persistent", "muc_membersonly", "muc_passwordprotected"} <= set(features)

            with pytest.raises(PresenceError) as outsider:
                await carol.plugin["xep_0045"].join_muc_wait(ROOM, "Carol", timeout=5)
            assert outsider.value.condition == "registration-required"
            with pytest.raises(PresenceError) as wrong:
                await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", password="guess", timeout=5)
            assert wrong.value.condition == "not-authorized"
            _own, subject, _occupants, _history = await bob.plugin["xep_0045"].join_muc_wait(
                ROOM, "Bob", password="open sesame", timeout=5
            )
            assert subject["subject"] == "kept across restarts"
        finally:
            await close(bob)
            await close(carol)
    finally:
        await running.stop()


async def test_mediated_invitation_makes_a_member(muc_server: RunningServer) -> None:
    alice = await member(muc_server, "alice")
    bob = await member(muc_server, "bob")
    try:
        muc = alice.plugin["xep_0045"]
        await muc.join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        form = await muc.get_room_config(ROOM, timeout=5)
        form.set_values({"muc#roomconfig_membersonly": True})
        await muc.set_room_config(ROOM, form, timeout=5)
        invited = asyncio.ensure_future(bob.wait_until("groupchat_invite", timeout=5))
        muc.invite(ROOM, SJID("bob@localhost"), reason="come chat")
        invitation = await invited
        assert invitation["from"] == ROOM
        assert invitation["muc"]["invite"]["from"] == SJID("alice@localhost")
        assert invitation["muc"]["invite"]["reason"] == "come chat"
        # Invited into a members-only room: now a member, so the door opens.
        own, _subject, _occupants, _history = await bob.plugin["xep_0045"].join_muc_wait(
            ROOM, "Bob", timeout=5
        )
        assert own["muc"]["affiliation"] == "member"
    finally:
        await close(alice)
        await close(bob)


async def test_room_archive_is_paged_for_occupants_only(muc_server: RunningServer) -> None:
    alice = await login(muc_server, "alice@localhost/x", PASSWORD, plugins=("xep_0045", "xep_0313"))
    bob = await login(muc_server, "bob@localhost/x", PASSWORD, plugins=("xep_0045", "xep_0313"))
    carol = await login(muc_server, "carol@localhost/x", PASSWORD, plugins=("xep_0313",))
    try:
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        stamped = asyncio.ensure_future(bob.wait_until("groupchat_message", timeout=5))
        for n in range(30):
            alice.send_message(mto=ROOM, mbody=f"r{n:02d}", mtype="groupchat")
        first = await stamped
        stanza_id = first.xml.find("{urn:xmpp:sid:0}stanza-id")
        assert stanza_id is not None
        assert stanza_id.get("by") == "lounge@conference.localhost"
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)

        bodies = [
            str(m["mam_result"]["forwarded"]["stanza"]["body"])
            async for m in bob.plugin["xep_0313"].iterate(jid=ROOM, rsm={"max": 10})
        ]
        assert bodies == [f"r{n:02d}" for n in range(30)]
        outsider = carol.make_iq_set(ito=ROOM)
        outsider.append(ET.fromstring("<query xmlns='urn:xmpp:mam:2'/>"))
        with pytest.raises(IqError) as refused:
            await outsider.send(timeout=5)
        assert refused.value.condition == "forbidden"
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_self_ping_and_occupant_ids(muc_server: RunningServer) -> None:
    alice = await member(muc_server, "alice")
    bob = await member(muc_server, "bob")
    carol = await member(muc_server, "carol")
    try:
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        # XEP-0410: still joined? Yes for Bob himself, not-acceptable for anyone else.
        await bob.plugin["xep_0199"].ping(jid=SJID(f"{ROOM}/Bob"), timeout=5)
        with pytest.raises(IqError) as stranger:
            await carol.plugin["xep_0199"].send_ping(jid=SJID(f"{ROOM}/Bob"), timeout=5)
        assert stranger.value.condition == "not-acceptable"

        # XEP-0421: one opaque, stable id per account in the room.
        ids = []
        for body in ("one", "two"):
            got = asyncio.ensure_future(bob.wait_until("groupchat_message", timeout=5))
            alice.send_message(mto=ROOM, mbody=body, mtype="groupchat")
            ids.append((await got).xml.find("{urn:xmpp:occupant-id:0}occupant-id").get("id"))
        assert ids[0] == ids[1]
        assert "alice" not in ids[0]
        got = asyncio.ensure_future(alice.wait_until("groupchat_message", timeout=5))
        bob.send_message(mto=ROOM, mbody="three", mtype="groupchat")
        other = (await got).xml.find("{urn:xmpp:occupant-id:0}occupant-id").get("id")
        assert other != ids[0]
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_the_routers_own_error_for_a_room_names_the_room(muc_server: RunningServer) -> None:
    """RFC 6120 §8.3.2 (issue 18): an IQ the room does not handle is answered from the room
    with `by` naming it, like the errors the room raises itself."""
    alice = await member(muc_server, "alice")
    try:
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        iq = alice.make_iq_get(ito=ROOM)
        iq.append(ET.Element("{urn:example:nothing-here}query"))
        with pytest.raises(IqError) as info:
            await iq.send(timeout=5)
        error = info.value.iq
        assert error["error"]["condition"] == "service-unavailable"
        assert error["from"] == ROOM
        assert error["error"]["by"] == str(ROOM)
    finally:
        await close(alice)
