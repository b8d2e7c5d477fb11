"""XEP-0045 governance with slixmpp: voice requests in moderated rooms, every role and
affiliation change with its status codes and refusals, reserved nicks, configuration change
notices, XEP-0425 message moderation, XEP-0486 room avatars, and the service's limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Callable

import pytest
from slixmpp import JID as SJID
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.stanza import Message
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, instant_room, login

PASSWORD = "muc-password"
ROOM = SJID("hall@conference.localhost")
PLUGINS = ("xep_0045", "xep_0313", "xep_0425", "xep_0054")


@pytest.fixture
async def muc_server(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    options = {"muc": {"max_rooms_per_user": 2, "messages_per_s": 1.0, "messages_burst": 5}}
    running = await start(config_factory(hosts={"localhost": {"modules": options}}))
    for user in ("alice", "bob", "carol", "dave"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def member(server: RunningServer, user: str) -> ClientXMPP:
    client = await login(server, f"{user}@localhost/x", PASSWORD, plugins=PLUGINS)
    client.send_presence()
    return client


def codes(presence: object) -> set[int]:
    return {int(c) for c in presence["muc"]["status_codes"]}  # type: ignore[index]


async def configure(client: ClientXMPP, room: SJID, values: dict[str, object]) -> None:
    muc = client.plugin["xep_0045"]
    form = await muc.get_room_config(room, timeout=5)
    form.set_values(values)
    await muc.set_room_config(room, form, timeout=5)


async def test_voice_is_requested_and_granted_in_a_moderated_room(
    muc_server: RunningServer,
) -> None:
    alice, bob = await member(muc_server, "alice"), await member(muc_server, "bob")
    try:
        own, *_ = await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        assert 170 in codes(own)  # the room is logged (§7.2.12)
        await instant_room(alice, ROOM)
        notice = asyncio.ensure_future(alice.wait_until("groupchat_config_status", timeout=5))
        await configure(alice, ROOM, {"muc#roomconfig_moderatedroom": True})
        assert 104 in codes(await notice)

        own, *_ = await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        assert own["muc"]["role"] == "visitor"
        refused = asyncio.ensure_future(bob.wait_until("message_error", timeout=5))
        bob.send_message(mto=ROOM, mbody="hello?", mtype="groupchat")
        assert (await refused)["error"]["condition"] == "forbidden"

        # §7.13: the request reaches the moderator as a form to approve.
        asked: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        alice.register_handler(Callback("voice", StanzaPath("message/form"), asked.set_result))
        bob.plugin["xep_0045"].request_voice(ROOM, "participant")
        form = (await asyncio.wait_for(asked, 5))["form"]
        fields = form.get_values()
        assert fields["muc#roomnick"] == "Bob"
        assert fields["muc#jid"] == SJID("bob@localhost/x")

        # §8.6: the moderator approves; Bob becomes a participant and talks.
        voiced = asyncio.ensure_future(bob.wait_until(f"muc::{ROOM}::presence", timeout=5))
        answer = alice.make_message(mto=ROOM)
        reply = answer["form"]
        reply["type"] = "submit"
        reply.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#request")
        reply.add_field(var="muc#roomnick", value="Bob")
        reply.add_field(var="muc#request_allow", ftype="boolean", value=True)
        answer.send()
        assert (await voiced)["muc"]["role"] == "participant"
        heard = asyncio.ensure_future(alice.wait_until("groupchat_message", timeout=5))
        bob.send_message(mto=ROOM, mbody="thanks", mtype="groupchat")
        assert (await heard)["body"] == "thanks"
    finally:
        await close(alice)
        await close(bob)


async def test_roles_and_affiliations_follow_the_tables(muc_server: RunningServer) -> None:
    alice, bob = await member(muc_server, "alice"), await member(muc_server, "bob")
    carol, dave = await member(muc_server, "carol"), await member(muc_server, "dave")
    muc = alice.plugin["xep_0045"]
    try:
        await muc.join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        for client, nick in ((bob, "Bob"), (carol, "Carol"), (dave, "Dave")):
            await client.plugin["xep_0045"].join_muc_wait(ROOM, nick, timeout=5)

        # Owner makes Bob an admin: he is a moderator now, and everyone sees it.
        promoted = asyncio.ensure_future(carol.wait_until(f"muc::{ROOM}::presence", timeout=5))
        await muc.set_affiliation(ROOM, "admin", jid=SJID("bob@localhost"), timeout=5)
        seen = await promoted
        assert (seen["muc"]["affiliation"], seen["muc"]["role"]) == ("admin", "moderator")

        # An admin may not touch the owner, nor grant admin; a participant may not kick.
        admin = bob.plugin["xep_0045"]
        with pytest.raises(IqError) as over:
            await admin.set_affiliation(ROOM, "outcast", jid=SJID("alice@localhost"), timeout=5)
        assert over.value.condition == "not-allowed"
        with pytest.raises(IqError) as grant:
            await admin.set_affiliation(ROOM, "admin", jid=SJID("carol@localhost"), timeout=5)
        assert grant.value.condition == "forbidden"
        with pytest.raises(IqError) as kick:
            await carol.plugin["xep_0045"].set_role(ROOM, "Dave", "none", timeout=5)
        assert kick.value.condition == "forbidden"

        # The admin grants moderation to Carol, then takes it back.
        await admin.set_role(ROOM, "Carol", "moderator", timeout=5)
        moderators = await admin.get_roles_list(ROOM, "moderator", timeout=5)
        assert set(moderators) == {"Alice", "Bob", "Carol"}
        await admin.set_role(ROOM, "Carol", "participant", timeout=5)

        # Members, then members-only: Dave (no affiliation) is removed with 322.
        await admin.set_affiliation(ROOM, "member", jid=SJID("carol@localhost"), timeout=5)
        removed = asyncio.ensure_future(dave.wait_until(f"muc::{ROOM}::presence", timeout=5))
        await configure(alice, ROOM, {"muc#roomconfig_membersonly": True})
        gone = await removed
        assert gone["type"] == "unavailable"
        assert {322, 110} <= codes(gone)

        # Carol loses membership in a members-only room: 321.
        dropped = asyncio.ensure_future(carol.wait_until(f"muc::{ROOM}::presence", timeout=5))
        await admin.set_affiliation(ROOM, "none", jid=SJID("carol@localhost"), timeout=5)
        assert {321, 110} <= codes(await dropped)

        # The last owner cannot step down; the member list shows what is left.
        with pytest.raises(IqError) as last:
            await muc.set_affiliation(ROOM, "member", jid=SJID("alice@localhost"), timeout=5)
        assert last.value.condition == "conflict"
        admins = await muc.get_affiliation_list(ROOM, "admin", timeout=5)
        assert [str(j) for j in admins] == ["bob@localhost"]
    finally:
        for client in (alice, bob, carol, dave):
            await close(client)


async def test_registration_reserves_a_nick(muc_server: RunningServer) -> None:
    alice, bob, carol = [await member(muc_server, u) for u in ("alice", "bob", "carol")]
    try:
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        ask = bob.make_iq_get(queryxmlns="jabber:iq:register", ito=ROOM)
        form = (await ask.send(timeout=5)).xml.find(".//{jabber:x:data}x")
        assert form is not None
        assert "muc#register_roomnick" in {f.get("var") for f in form}

        submit = bob.make_iq_set(ito=ROOM)
        submit.append(
            ET.fromstring(
                "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
                "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value>"
                "</field><field var='muc#register_roomnick'><value>Bobby</value></field>"
                "</x></query>"
            )
        )
        await submit.send(timeout=5)
        members = await alice.plugin["xep_0045"].get_affiliation_list(ROOM, "member", timeout=5)
        assert [str(j) for j in members] == ["bob@localhost"]

        # §7.12: Bob's client can discover his reserved nick; nobody else may use it.
        info = await bob.plugin["xep_0030"].get_info(jid=ROOM, node="x-roomuser-item", timeout=5)
        assert [i[3] for i in info["disco_info"]["identities"]] == ["Bobby"]
        with pytest.raises(PresenceError) as taken:
            await carol.plugin["xep_0045"].join_muc_wait(ROOM, "Bobby", timeout=5)
        assert taken.value.condition == "conflict"
        own, *_ = await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bobby", timeout=5)
        assert own["muc"]["affiliation"] == "member"
        again = await bob.make_iq_get(queryxmlns="jabber:iq:register", ito=ROOM).send(timeout=5)
        assert again.xml.find(".//{jabber:iq:register}registered") is not None
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_moderators_retract_messages_everywhere(muc_server: RunningServer) -> None:
    alice, bob, carol = [await member(muc_server, u) for u in ("alice", "bob", "carol")]
    try:
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        got = asyncio.ensure_future(alice.wait_until("groupchat_message", timeout=5))
        bob.send_message(mto=ROOM, mbody="buy cheap potions", mtype="groupchat")
        spam = await got
        spam_id = spam.xml.find("{urn:xmpp:sid:0}stanza-id").get("id")

        with pytest.raises(IqError) as refused:
            await bob.plugin["xep_0425"].moderate(ROOM, spam_id, "mine", timeout=5)
        assert refused.value.condition == "forbidden"
        with pytest.raises(IqError) as unknown:
            await alice.plugin["xep_0425"].moderate(ROOM, "no-such-id", timeout=5)
        assert unknown.value.condition == "item-not-found"

        told = asyncio.ensure_future(bob.wait_until("moderated_message", timeout=5))
        await alice.plugin["xep_0425"].moderate(ROOM, spam_id, "spam", timeout=5)
        notice = await told
        assert notice["retract"]["id"] == spam_id
        assert notice["retract"]["reason"] == "spam"
        assert notice["retract"]["moderated"]["by"] == SJID(f"{ROOM}/Alice")

        # The archive keeps a tombstone without the words; joiners no longer get them.
        results = [
            m["mam_result"]["forwarded"]["stanza"]
            async for m in alice.plugin["xep_0313"].iterate(jid=ROOM, rsm={"max": 10})
        ]
        tombstone = next(m for m in results if m["id"] == spam["id"])
        assert "potions" not in str(tombstone)
        assert tombstone.xml.find("{urn:xmpp:message-retract:1}retracted") is not None
        _own, _subject, _occupants, history = await carol.plugin["xep_0045"].join_muc_wait(
            ROOM, "Carol", maxstanzas=20, timeout=5
        )
        assert all("potions" not in m["body"] for m in history)
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_room_avatar_from_the_room_vcard(muc_server: RunningServer) -> None:
    alice, bob = await member(muc_server, "alice"), await member(muc_server, "bob")
    image = b"\x89PNG\r\n\x1a\n a tiny test image"
    try:
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        card = (
            "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>"
            f"<BINVAL>{base64.b64encode(image).decode()}</BINVAL></PHOTO></vCard>"
        )
        changed = asyncio.ensure_future(bob.wait_until("groupchat_config_status", timeout=5))
        publish = alice.make_iq_set(ito=ROOM)
        publish.append(ET.fromstring(card))
        await publish.send(timeout=5)
        assert 104 in codes(await changed)

        info = await bob.plugin["xep_0030"].get_info(jid=ROOM, timeout=5)
        form = info["disco_info"]["form"].get_values()
        expected = hashlib.sha1(image).hexdigest()  # noqa: S324 (XEP-0153 names SHA-1)
        assert form["muc#roominfo_avatarhash"] == [expected]
        fetched = await bob.make_iq_get(queryxmlns="vcard-temp", ito=ROOM).send(timeout=5)
        binval = fetched.xml.find(".//{vcard-temp}BINVAL")
        assert binval is not None
        assert base64.b64decode(binval.text or "") == image

        forged = bob.make_iq_set(ito=ROOM)
        forged.append(ET.fromstring("<vCard xmlns='vcard-temp'/>"))
        with pytest.raises(IqError) as refused:
            await forged.send(timeout=5)
        assert refused.value.condition == "forbidden"
    finally:
        await close(alice)
        await close(bob)


async def test_service_limits(muc_server: RunningServer) -> None:
    alice, bob, carol = [await member(muc_server, u) for u in ("alice", "bob", "carol")]
    try:
        # Rooms per owner (2 here): the third creation is refused.
        for name in ("one", "two"):
            await alice.plugin["xep_0045"].join_muc_wait(
                SJID(f"{name}@conference.localhost"), "Alice", timeout=5
            )
        with pytest.raises(PresenceError) as many:
            await alice.plugin["xep_0045"].join_muc_wait(
                SJID("three@conference.localhost"), "Alice", timeout=5
            )
        assert many.value.condition == "not-allowed"

        # A full room answers service-unavailable (§7.2.10).
        room = SJID("one@conference.localhost")
        await configure(alice, room, {"muc#roomconfig_maxusers": "2"})
        await bob.plugin["xep_0045"].join_muc_wait(room, "Bob", timeout=5)
        with pytest.raises(PresenceError) as full:
            await carol.plugin["xep_0045"].join_muc_wait(room, "Carol", timeout=5)
        assert full.value.condition == "service-unavailable"

        # Rate per occupant (burst 5, then 1/s): a flood is cut, the room stays usable.
        errors: list[str] = []
        bob.add_event_handler("message_error", lambda m: errors.append(m["error"]["condition"]))
        for n in range(12):
            bob.send_message(mto=room, mbody=f"flood {n}", mtype="groupchat")
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        await asyncio.sleep(0.2)
        assert set(errors) == {"resource-constraint"}
        assert len(errors) >= 5
        heard = asyncio.ensure_future(bob.wait_until("groupchat_message", timeout=5))
        alice.send_message(mto=room, mbody="still here", mtype="groupchat")
        assert (await heard)["body"] == "still here"
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_a_new_room_stays_locked_until_configured(
    config_factory: Callable[..., ServerConfig],
) -> None:
    options = {"muc": {"lock_timeout_s": 0.5}}
    running = await start(config_factory(hosts={"localhost": {"modules": options}}))
    for user in ("alice", "bob"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    alice, bob = await member(running, "alice"), await member(running, "bob")
    try:
        own, *_ = await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        assert 201 in codes(own)
        with pytest.raises(PresenceError) as locked:  # §10.1.1: nobody else before that
            await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        assert locked.value.condition == "item-not-found"

        # Cancelling the first configuration destroys the room (§10.1.3).
        gone = asyncio.ensure_future(alice.wait_until(f"muc::{ROOM}::presence", timeout=5))
        await alice.plugin["xep_0045"].cancel_config(ROOM, timeout=5)
        assert (await gone)["type"] == "unavailable"
        info = alice.plugin["xep_0030"].get_info(jid=ROOM, timeout=5)
        with pytest.raises(IqError):
            await info

        # A room nobody configures in time is destroyed as well.
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        expired = asyncio.ensure_future(alice.wait_until(f"muc::{ROOM}::presence", timeout=5))
        assert (await expired)["type"] == "unavailable"

        # Configured (an instant room), it opens to everyone.
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        own, *_ = await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        assert own["muc"]["role"] == "participant"
    finally:
        await close(alice)
        await close(bob)
        await running.stop()


async def test_occupants_retract_their_own_messages_only(muc_server: RunningServer) -> None:
    alice, bob, carol = [await member(muc_server, u) for u in ("alice", "bob", "carol")]
    for client in (alice, bob, carol):
        client.register_plugin("xep_0424")
    try:
        await alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=5)
        await instant_room(alice, ROOM)
        await bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=5)
        got = asyncio.ensure_future(alice.wait_until("groupchat_message", timeout=5))
        bob.send_message(mto=ROOM, mbody="oops, wrong window", mtype="groupchat")
        typo = await got
        typo_id = typo.xml.find("{urn:xmpp:sid:0}stanza-id").get("id")

        # Alice may not take back Bob's message (she would moderate it instead).
        refused = asyncio.ensure_future(alice.wait_until("message_error", timeout=5))
        alice.plugin["xep_0424"].send_retraction(ROOM, typo_id, mtype="groupchat")
        assert (await refused)["error"]["condition"] == "forbidden"

        told = asyncio.ensure_future(alice.wait_until("message_retract", timeout=5))
        bob.plugin["xep_0424"].send_retraction(ROOM, typo_id, mtype="groupchat")
        assert (await told)["retract"]["id"] == typo_id
        results = [
            m["mam_result"]["forwarded"]["stanza"]
            async for m in alice.plugin["xep_0313"].iterate(jid=ROOM, rsm={"max": 10})
        ]
        tombstone = next(m for m in results if m["id"] == typo["id"])
        assert "wrong window" not in str(tombstone)
        assert tombstone.xml.find("{urn:xmpp:message-retract:1}retracted") is not None
        _own, _subject, _occupants, history = await carol.plugin["xep_0045"].join_muc_wait(
            ROOM, "Carol", maxstanzas=20, timeout=5
        )
        assert all("wrong window" not in m["body"] for m in history)
    finally:
        for client in (alice, bob, carol):
            await close(client)


SEARCH = "urn:xmpp:channel-search:0:search"


async def channel_search(client: ClientXMPP, fields: str, rsm: str = "") -> ET.Element:
    iq = client.make_iq_get(ito="conference.localhost")
    iq.append(
        ET.fromstring(
            f"<search xmlns='{SEARCH}'>{rsm}<x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:channel-search:0:search-params"
            f"</value></field>{fields}</x></search>"
        )
    )
    answer = await iq.send(timeout=5)
    result = answer.xml.find(f"{{{SEARCH}}}result")
    assert result is not None
    return result


async def test_channel_search_finds_public_rooms(muc_server: RunningServer) -> None:
    alice, bob = await member(muc_server, "alice"), await member(muc_server, "bob")
    try:
        rooms = {
            "birds": ("Bird watching", "Herons, egrets and storks", {}),
            "fish": ("Fishing", "Where the herons eat", {}),
            "secret": ("Heron hideout", "", {"muc#roomconfig_publicroom": False}),
        }
        for local, (name, description, extra) in rooms.items():
            room = SJID(f"{local}@conference.localhost")
            owner = bob if local == "secret" else alice  # two rooms each at most here
            await owner.plugin["xep_0045"].join_muc_wait(room, "Owner", timeout=5)
            await configure(
                owner,
                room,
                {"muc#roomconfig_roomname": name, "muc#roomconfig_roomdesc": description, **extra},
            )
        await bob.plugin["xep_0045"].join_muc_wait(
            SJID("fish@conference.localhost"), "Bob", timeout=5
        )
        info = await bob.plugin["xep_0030"].get_info(jid="conference.localhost", timeout=5)
        assert SEARCH in info["disco_info"]["features"]

        # Keyword search in names and descriptions; hidden rooms never show; busiest first.
        found = await channel_search(bob, "<field var='q'><value>heron</value></field>")
        items = found.findall(f"{{{SEARCH}}}item")
        assert [i.get("address") for i in items] == [
            "fish@conference.localhost",
            "birds@conference.localhost",
        ]
        assert items[0].findtext(f"{{{SEARCH}}}nusers") == "2"  # Alice and Bob
        assert items[0].findtext(f"{{{SEARCH}}}is-open") == "true"

        # Everything, by address, one per page.
        everything = (
            "<field var='all'><value>true</value></field><field var='key'><value>"
            "{urn:xmpp:channel-search:0:order}address</value></field>"
        )
        first = await channel_search(
            bob, everything, "<set xmlns='http://jabber.org/protocol/rsm'><max>1</max></set>"
        )
        assert [i.get("address") for i in first.findall(f"{{{SEARCH}}}item")] == [
            "birds@conference.localhost"
        ]
        last = first.findtext(
            "{http://jabber.org/protocol/rsm}set/{http://jabber.org/protocol/rsm}last"
        )
        second = await channel_search(
            bob,
            everything,
            f"<set xmlns='http://jabber.org/protocol/rsm'><max>1</max><after>{last}</after></set>",
        )
        assert [i.get("address") for i in second.findall(f"{{{SEARCH}}}item")] == [
            "fish@conference.localhost"
        ]

        # The errors of §4.2.2.
        for fields, condition, app in (
            ("<field var='q'><value>x</value></field><field var='all'><value>1</value></field>",
             "bad-request", "conflicting-fields"),
            ("", "bad-request", "no-search-conditions"),
            ("<field var='q'><value> </value></field>", "bad-request", "invalid-search-terms"),
            ("<field var='all'><value>1</value></field><field var='key'><value>{x}y</value>"
             "</field>", "feature-not-implemented", "invalid-sort-key"),
        ):  # fmt: skip
            with pytest.raises(IqError) as refused:
                await channel_search(bob, fields)
            assert refused.value.condition == condition
            assert (
                refused.value.iq.xml.find(f".//{{urn:xmpp:channel-search:0:error}}{app}")
                is not None
            )
    finally:
        await close(alice)
        await close(bob)
