"""Old and new clients see the same avatar and bookmarks (slixmpp xep_0084, xep_0054,
xep_0153, xep_0048/0049, xep_0060, xep_0172): XEP-0398 both ways with the photo hash in
presence, XEP-0402 #compat both ways, and the user nickname reaching a contact."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

from slixmpp.xmlstream import ET

from heron.app import RunningServer
from tests.integration.clients import close
from tests.integration.test_pubsub import (
    AVATAR_META,
    BOOKMARKS,
    befriend,
    online_with_interest,
    ps_server,  # noqa: F401 (the fixture)
    user,
)

IMAGE = b"\x89PNG\r\n\x1a\n pretend this is a picture"
DIGEST = hashlib.sha1(IMAGE).hexdigest()  # noqa: S324 (XEP-0084 names SHA-1)


async def test_pep_avatar_becomes_the_vcard_photo_and_presence_hash(
    ps_server: RunningServer,  # noqa: F811
) -> None:
    await befriend(ps_server, "alice", "bob")
    alice = await user(ps_server, "alice", available=False)
    bob = await user(ps_server, "bob")
    carol = await user(ps_server, "carol")
    try:
        info = await alice.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=5)
        features = info["disco_info"]["features"]
        assert "urn:xmpp:pep-vcard-conversion:0" in features
        assert "urn:xmpp:bookmarks:1#compat" in features

        avatars = alice.plugin["xep_0084"]
        await avatars.publish_avatar(IMAGE, timeout=5)
        await avatars.publish_avatar_metadata(
            items=[{"id": DIGEST, "type": "image/png", "bytes": len(IMAGE)}], timeout=5
        )
        # A vCard-only client, even a stranger, finds the picture in the vCard.
        card = await carol.plugin["xep_0054"].get_vcard("alice@localhost", timeout=5)
        photo = card.xml.find(".//{vcard-temp}PHOTO")
        assert photo is not None
        assert photo.findtext("{vcard-temp}TYPE") == "image/png"
        assert base64.b64decode(photo.findtext("{vcard-temp}BINVAL") or "") == IMAGE

        # Every available presence carries the hash (XEP-0153), added by the server.
        seen = asyncio.ensure_future(bob.wait_until("presence_available", timeout=5))
        alice.send_presence()
        presence = await seen
        assert presence.xml.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == DIGEST
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_vcard_photo_is_published_to_pep(ps_server: RunningServer) -> None:  # noqa: F811
    await befriend(ps_server, "alice", "bob")
    bob = await online_with_interest(ps_server, "bob", AVATAR_META)
    alice = await user(ps_server, "alice")
    try:
        await asyncio.sleep(0.3)  # bob's caps are known
        told = asyncio.ensure_future(bob.wait_until("avatar_metadata_publish", timeout=5))
        card = ET.fromstring(
            "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE>"
            f"<BINVAL>{base64.b64encode(IMAGE).decode()}</BINVAL></PHOTO></vCard>"
        )
        store = alice.make_iq_set()
        store.append(card)
        await store.send(timeout=5)
        event = await told
        assert event["pubsub_event"]["items"]["item"]["avatar_metadata"]["items"][0]["id"] == DIGEST
        fetched = await bob.plugin["xep_0084"].retrieve_avatar("alice@localhost", DIGEST, timeout=5)
        assert fetched["pubsub"]["items"]["item"]["avatar_data"]["value"] == IMAGE
    finally:
        await close(alice)
        await close(bob)


async def private_bookmarks(client: Any) -> ET.Element:
    ask = client.make_iq_get()
    ask.append(
        ET.fromstring(
            "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"
        )
    )
    answer = await ask.send(timeout=5)
    storage = answer.xml.find(".//{storage:bookmarks}storage")
    assert storage is not None
    return storage


async def test_bookmarks_are_the_same_in_pep_and_private_storage(
    ps_server: RunningServer,  # noqa: F811
) -> None:
    alice = await user(ps_server, "alice")
    other = await user(ps_server, "alice", "phone")
    try:
        # An old client stores XEP-0048 bookmarks: a new one finds them as XEP-0402 items.
        legacy = alice.make_iq_set()
        legacy.append(
            ET.fromstring(
                "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
                "<conference jid='lounge@conference.localhost' name='Lounge' autojoin='true'>"
                "<nick>Al</nick></conference><url name='Docs' url='https://example.org/'/>"
                "</storage></query>"
            )
        )
        await legacy.send(timeout=5)
        items = await other.plugin["xep_0060"].get_items("alice@localhost", BOOKMARKS, timeout=5)
        found = {
            i["id"]: i.xml.find(f"{{{BOOKMARKS}}}conference") for i in items["pubsub"]["items"]
        }
        conference = found["lounge@conference.localhost"]
        assert conference is not None
        assert conference.get("name") == "Lounge"
        assert conference.get("autojoin") == "true"
        assert conference.findtext(f"{{{BOOKMARKS}}}nick") == "Al"

        # A new client adds one with XEP-0402: the old document has both (and keeps its URL).
        conference = ET.fromstring(f"<conference xmlns='{BOOKMARKS}' name='Team'/>")
        form = other.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(
            var="FORM_TYPE",
            ftype="hidden",
            value="http://jabber.org/protocol/pubsub#publish-options",
        )
        form.add_field(var="pubsub#persist_items", value="true")
        form.add_field(var="pubsub#access_model", value="whitelist")
        form.add_field(var="pubsub#max_items", value="max")
        form.add_field(var="pubsub#send_last_published_item", value="never")
        await other.plugin["xep_0060"].publish(
            "alice@localhost", BOOKMARKS, id="team@conference.localhost",
            payload=conference, options=form, timeout=5,
        )  # fmt: skip
        storage = await private_bookmarks(alice)
        rooms = {c.get("jid"): c for c in storage.findall("{storage:bookmarks}conference")}
        assert set(rooms) == {"lounge@conference.localhost", "team@conference.localhost"}
        assert storage.find("{storage:bookmarks}url") is not None

        # Removing it with XEP-0048 retracts it from PEP.
        legacy = alice.make_iq_set()
        legacy.append(
            ET.fromstring(
                "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
                "<conference jid='team@conference.localhost' name='Team'/></storage></query>"
            )
        )
        await legacy.send(timeout=5)
        items = await other.plugin["xep_0060"].get_items("alice@localhost", BOOKMARKS, timeout=5)
        assert [i["id"] for i in items["pubsub"]["items"]] == ["team@conference.localhost"]
    finally:
        await close(alice)
        await close(other)


async def test_user_nickname_reaches_a_contact(ps_server: RunningServer) -> None:  # noqa: F811
    await befriend(ps_server, "alice", "bob")
    bob = await online_with_interest(ps_server, "bob", "http://jabber.org/protocol/nick")
    alice = await user(ps_server, "alice")
    try:
        await asyncio.sleep(0.3)
        got = asyncio.ensure_future(bob.wait_until("user_nick_publish", timeout=5))
        await alice.plugin["xep_0172"].publish_nick("Wonderland Alice", timeout=5)
        event = await got
        assert str(event["from"]) == "alice@localhost"
        assert event["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Wonderland Alice"
    finally:
        await close(alice)
        await close(bob)
