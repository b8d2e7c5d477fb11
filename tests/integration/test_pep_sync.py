"""PEP beside the older protocols, driven by slixmpp: avatars kept the same in PEP and the
vCard (XEP-0084, XEP-0054, XEP-0153, XEP-0398), bookmarks in PEP and private XML storage
(XEP-0402, XEP-0049, XEP-0048), nicknames (XEP-0172), PEP in disco (XEP-0163 §6), and the
PEP data of a removed account."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from heron.app import RunningServer, start
from heron.config import load_config
from heron.jid import JID
from tests.integration.clients import close, login
from tests.integration.test_cli import CONFIG, heron
from tests.integration.test_pubsub import (
    AVATAR_META,
    BOOKMARKS,
    PASSWORD,
    PLUGINS,
    SERVICE,
    befriend,
    online_with_interest,
    options_form,
    ps_server,
    user,
)

__all__ = ["ps_server"]  # the fixture, shared with test_pubsub

pytestmark = pytest.mark.both_engines  # the tests on ps_server run on each engine

NICK = "http://jabber.org/protocol/nick"
PRIVATE = "jabber:iq:private"
LEGACY = "storage:bookmarks"
IMAGE = b"\x89PNG\r\n\x1a\n not really an image, but bytes all the same"


async def publish_avatar(client: ClientXMPP, data: bytes) -> str:
    avatars = client.plugin["xep_0084"]
    avatar_id: str = avatars.generate_id(data)
    await avatars.publish_avatar(data, timeout=5)
    await avatars.publish_avatar_metadata(
        items=[{"id": avatar_id, "type": "image/png", "bytes": len(data)}], timeout=5
    )
    return avatar_id


async def test_pep_avatar_becomes_the_vcard_photo_and_the_presence_hash(
    ps_server: RunningServer,
) -> None:
    await befriend(ps_server, "alice", "bob")
    alice = await user(ps_server, "alice")
    bob = await login(
        ps_server, "bob@localhost/x", PASSWORD, plugins=(*PLUGINS, "xep_0054", "xep_0153")
    )
    bob.send_presence()
    try:
        sha1 = await publish_avatar(alice, IMAGE)
        assert sha1 == hashlib.sha1(IMAGE, usedforsecurity=False).hexdigest()
        card = await bob.plugin["xep_0054"].get_vcard("alice@localhost", timeout=5)
        assert card["vcard_temp"]["PHOTO"]["BINVAL"] == IMAGE
        assert card["vcard_temp"]["PHOTO"]["TYPE"] == "image/png"

        # Alice's client knows nothing of XEP-0153; the server adds the hash (XEP-0398 §4).
        seen = asyncio.ensure_future(bob.wait_until("vcard_avatar_update", timeout=5))
        alice.send_presence(pstatus="with a face now")
        presence = await seen
        assert presence["from"].bare == "alice@localhost"
        assert presence["vcard_temp_update"]["photo"] == sha1

        # Disabling the avatar (XEP-0084 §4.5) removes the PHOTO, and the hash goes empty.
        await alice.plugin["xep_0084"].stop(timeout=5)
        card = await bob.plugin["xep_0054"].get_vcard("alice@localhost", timeout=5)
        assert card.xml.find(".//{vcard-temp}PHOTO") is None
        seen = asyncio.get_running_loop().create_future()
        bob.add_event_handler(
            "presence_available",
            lambda p: None if seen.done() or p["status"] != "faceless" else seen.set_result(p),
        )
        alice.send_presence(pstatus="faceless")
        presence = await asyncio.wait_for(seen, 5)
        photo = presence.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
        assert photo is not None
        assert not photo.text
    finally:
        await close(alice)
        await close(bob)


async def test_vcard_photo_is_published_to_pep(ps_server: RunningServer) -> None:
    await befriend(ps_server, "alice", "bob")
    bob = await online_with_interest(ps_server, "bob", AVATAR_META)
    alice = await login(
        ps_server, "alice@localhost/old", PASSWORD, plugins=(*PLUGINS, "xep_0054", "xep_0153")
    )
    alice.send_presence()
    try:
        info = await alice.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=5)
        assert "urn:xmpp:pep-vcard-conversion:0" in info["disco_info"]["features"]
        await asyncio.sleep(0.3)  # bob's caps settle
        heard = asyncio.ensure_future(bob.wait_until("avatar_metadata_publish", timeout=5))
        await alice.plugin["xep_0153"].set_avatar(avatar=IMAGE, mtype="image/gif", timeout=5)
        message = await heard
        (meta,) = message["pubsub_event"]["items"]["item"]["avatar_metadata"]["items"]
        sha1 = hashlib.sha1(IMAGE, usedforsecurity=False).hexdigest()
        assert meta["id"] == sha1
        assert meta["type"] == "image/gif"
        assert int(meta["bytes"]) == len(IMAGE)
        fetched = await bob.plugin["xep_0084"].retrieve_avatar("alice@localhost", sha1, timeout=5)
        assert fetched["pubsub"]["items"]["item"]["avatar_data"]["value"] == IMAGE

        # A vCard without a bad PHOTO publishes nothing and is still stored.
        vcard = alice.plugin["xep_0054"].make_vcard()
        vcard["FN"] = "Alice"
        vcard.xml.append(
            ET.fromstring("<PHOTO xmlns='vcard-temp'><BINVAL>*not b64*</BINVAL></PHOTO>")
        )
        heard = asyncio.ensure_future(bob.wait_until("avatar_metadata_publish", timeout=5))
        await alice.plugin["xep_0054"].publish_vcard(vcard, timeout=5)
        message = await heard  # the PHOTO is unusable: the avatar is disabled (empty metadata)
        assert list(message["pubsub_event"]["items"]["item"]["avatar_metadata"]["items"]) == []
        card = await alice.plugin["xep_0054"].get_vcard("alice@localhost", timeout=5)
        assert card["vcard_temp"]["FN"] == "Alice"
    finally:
        await close(alice)
        await close(bob)


def legacy_storage(*rooms: tuple[str, str, str]) -> ET.Element:
    storage = ET.Element(f"{{{LEGACY}}}storage")
    for jid, name, nick in rooms:
        conference = ET.SubElement(
            storage, f"{{{LEGACY}}}conference", {"jid": jid, "name": name, "autojoin": "true"}
        )
        ET.SubElement(conference, f"{{{LEGACY}}}nick").text = nick
    ET.SubElement(storage, f"{{{LEGACY}}}url", {"name": "Site", "url": "https://example.org/"})
    return storage


async def private_set(client: ClientXMPP, element: ET.Element) -> None:
    iq = client.make_iq_set(ito=client.boundjid.bare)
    query = ET.SubElement(iq.xml, f"{{{PRIVATE}}}query")
    query.append(element)
    await iq.send(timeout=5)


async def private_get(client: ClientXMPP) -> ET.Element:
    iq = client.make_iq_get(queryxmlns=PRIVATE, ito=client.boundjid.bare)
    ET.SubElement(iq.xml.find(f"{{{PRIVATE}}}query"), f"{{{LEGACY}}}storage")
    result = await iq.send(timeout=5)
    storage = result.xml.find(f"{{{PRIVATE}}}query/{{{LEGACY}}}storage")
    assert storage is not None
    return storage


async def test_bookmarks_converted_both_ways(ps_server: RunningServer) -> None:
    modern = await online_with_interest(ps_server, "alice", BOOKMARKS)
    legacy = await user(ps_server, "alice", "legacy")
    ps = modern.plugin["xep_0060"]
    try:
        info = await modern.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=5)
        assert "urn:xmpp:bookmarks:1#compat" in info["disco_info"]["features"]
        await asyncio.sleep(0.3)

        # Private XML → PEP (XEP-0402 §5.3.2): one item per room, the owner's client told.
        heard = asyncio.ensure_future(modern.wait_until("pubsub_publish", timeout=5))
        await private_set(legacy, legacy_storage(("lounge@conference.localhost", "Lounge", "al")))
        assert (await heard)["pubsub_event"]["items"]["item"]["id"] == (
            "lounge@conference.localhost"
        )
        items = await ps.get_items("alice@localhost", BOOKMARKS, timeout=5)
        (item,) = list(items["pubsub"]["items"])
        conference = item.xml.find(f"{{{BOOKMARKS}}}conference")
        assert conference is not None
        assert conference.get("name") == "Lounge"
        assert conference.get("autojoin") in ("true", "1")
        assert conference.findtext(f"{{{BOOKMARKS}}}nick") == "al"
        config = await ps.get_node_config("alice@localhost", BOOKMARKS, timeout=5)
        fields = config["pubsub_owner"]["configure"]["form"].get_fields()
        assert fields["pubsub#access_model"]["value"] == "whitelist"

        # PEP → private XML (§5.3.1): every item, with the jid; the URL bookmark kept.
        room = ET.Element(f"{{{BOOKMARKS}}}conference", {"name": "Kitchen", "autojoin": "false"})
        ET.SubElement(room, f"{{{BOOKMARKS}}}nick").text = "chef"
        await ps.publish("alice@localhost", BOOKMARKS, id="kitchen@conference.localhost",
                         payload=room, timeout=5)  # fmt: skip
        storage = await private_get(legacy)
        rooms = {c.get("jid"): c for c in storage.findall(f"{{{LEGACY}}}conference")}
        assert set(rooms) == {"lounge@conference.localhost", "kitchen@conference.localhost"}
        assert rooms["kitchen@conference.localhost"].get("name") == "Kitchen"
        assert rooms["kitchen@conference.localhost"].findtext(f"{{{LEGACY}}}nick") == "chef"
        assert storage.find(f"{{{LEGACY}}}url") is not None

        await ps.retract("alice@localhost", BOOKMARKS, "lounge@conference.localhost",
                         notify=True, timeout=5)  # fmt: skip
        storage = await private_get(legacy)
        jids = [c.get("jid") for c in storage.findall(f"{{{LEGACY}}}conference")]
        assert jids == ["kitchen@conference.localhost"]

        # A legacy list without the kitchen: that item is retracted, and told.
        retracted = asyncio.ensure_future(modern.wait_until("pubsub_retract", timeout=5))
        await private_set(legacy, legacy_storage(("attic@conference.localhost", "Attic", "a")))
        message = await retracted
        assert message["pubsub_event"]["items"]["retract"]["id"] == "kitchen@conference.localhost"
        items = await ps.get_items("alice@localhost", BOOKMARKS, timeout=5)
        assert [i["id"] for i in items["pubsub"]["items"]] == ["attic@conference.localhost"]
    finally:
        await close(modern)
        await close(legacy)


async def test_nick_reaches_a_contact_that_asked_for_it(ps_server: RunningServer) -> None:
    """XEP-0172 §4 over PEP: +notify in caps is the subscription (XEP-0163 §4)."""
    await befriend(ps_server, "alice", "bob")
    bob = await online_with_interest(ps_server, "bob", NICK)
    carol = await online_with_interest(ps_server, "carol", NICK)
    dave = await user(ps_server, "bob", "other")  # bob's other device: no +notify
    alice = await user(ps_server, "alice")
    try:
        await asyncio.sleep(0.3)
        heard = asyncio.ensure_future(bob.wait_until("user_nick_publish", timeout=5))
        await alice.plugin["xep_0172"].publish_nick("Alice", timeout=5)
        message = await heard
        assert str(message["from"]) == "alice@localhost"
        assert message["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice"
        with pytest.raises(asyncio.TimeoutError):
            await carol.wait_until("user_nick_publish", timeout=0.5)  # no subscription
        with pytest.raises(asyncio.TimeoutError):
            await dave.wait_until("user_nick_publish", timeout=0.2)  # no +notify
    finally:
        for client in (alice, bob, carol, dave):
            await close(client)


async def test_disco_on_an_account_shows_pep_and_visible_nodes(ps_server: RunningServer) -> None:
    await befriend(ps_server, "alice", "bob")
    alice = await user(ps_server, "alice")
    bob = await user(ps_server, "bob")
    carol = await user(ps_server, "carol")
    try:
        await alice.plugin["xep_0172"].publish_nick("Alice", timeout=5)  # presence access
        opts = options_form(
            alice, "http://jabber.org/protocol/pubsub#publish-options", access_model="open"
        )
        await alice.plugin["xep_0060"].publish(
            "alice@localhost", "urn:example:public", payload=ET.Element("{urn:example}x"),
            options=opts, timeout=5,
        )  # fmt: skip

        for client in (alice, bob):
            info = await client.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=5)
            assert ("pubsub", "pep", None, None) in info["disco_info"]["identities"]
        with pytest.raises(IqError) as refused:
            await carol.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=5)
        assert refused.value.condition == "service-unavailable"

        def nodes(result: object) -> set[str]:
            return {node for _jid, node, _name in result["disco_items"]["items"]}  # type: ignore[index]

        got = await bob.plugin["xep_0030"].get_items(jid="alice@localhost", timeout=5)
        assert nodes(got) == {NICK, "urn:example:public"}
        got = await carol.plugin["xep_0030"].get_items(jid="alice@localhost", timeout=5)
        assert nodes(got) == {"urn:example:public"}
        got = await carol.plugin["xep_0030"].get_items(jid="nobody@localhost", timeout=5)
        assert nodes(got) == set()
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_removed_account_leaves_no_pep_data(ps_server: RunningServer) -> None:
    alice = await user(ps_server, "alice")
    await alice.plugin["xep_0172"].publish_nick("Alice", timeout=5)
    await alice.plugin["xep_0060"].create_node(SERVICE, "alices-news", timeout=5)
    await alice.plugin["xep_0077"].cancel_registration(timeout=5)
    await close(alice)
    await ps_server.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    again = await user(ps_server, "alice")
    try:
        with pytest.raises(IqError) as gone:
            await again.plugin["xep_0060"].get_items("alice@localhost", NICK, timeout=5)
        assert gone.value.condition == "item-not-found"
        # Whoever takes the name does not inherit the node the old account owned.
        with pytest.raises(IqError) as not_owner:
            await again.plugin["xep_0060"].get_node_config(SERVICE, "alices-news", timeout=5)
        assert not_owner.value.condition == "forbidden"
    finally:
        await close(again)


async def test_deluser_command_removes_pep_data(tmp_path: Path) -> None:
    path = tmp_path / "heron.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    config = load_config(path)
    running = await start(config)
    try:
        await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
        alice = await user(running, "alice")
        await alice.plugin["xep_0172"].publish_nick("Alice", timeout=5)
        await alice.plugin["xep_0060"].create_node(SERVICE, "alices-news", timeout=5)
        await close(alice)
    finally:
        await running.stop()
    done = heron(path, "deluser", "alice@localhost")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "data" / "heron.db") as db:
        rows = db.execute(
            "SELECT count(*) FROM pubsub_nodes WHERE service = 'alice@localhost'"
        ).fetchone()
        items = db.execute(
            "SELECT count(*) FROM pubsub_items WHERE service = 'alice@localhost'"
        ).fetchone()
        owners = db.execute(
            "SELECT affiliations FROM pubsub_nodes WHERE service = 'pubsub.localhost'"
        ).fetchall()
    assert rows == (0,)
    assert items == (0,)
    assert owners == [("{}",)]  # the service's node stays, owned by no one
