"""XEP-0060 at pubsub.localhost and XEP-0163 PEP, driven by slixmpp's xep_0060, xep_0163,
xep_0084 and xep_0115 plugins: node lifecycle, publish-options, notifications, access
models, paging, avatars seen by contacts only, private bookmarks, caps-based +notify. Each
test runs on SQLite and again on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0059 import Set
from slixmpp.plugins.xep_0060.stanza.pubsub import Pubsub
from slixmpp.xmlstream import ET, register_stanza_plugin

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "pubsub-password"
SERVICE = "pubsub.localhost"
PLUGINS = ("xep_0004", "xep_0059", "xep_0060", "xep_0115", "xep_0163", "xep_0084", "xep_0172")
AVATAR_META = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"
# COMPAT: slixmpp 1.17 leaves RSM (XEP-0059) off its <pubsub/> stanza; item paging needs it.
register_stanza_plugin(Pubsub, Set)

pytestmark = pytest.mark.both_engines


@pytest.fixture
async def ps_server(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    running = await start(config_factory())
    for user in ("alice", "bob", "carol"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def befriend(server: RunningServer, a: str, b: str, groups: tuple[str, ...] = ()) -> None:
    """Mutual presence subscription, written straight into both rosters."""
    from heron.modules.roster.store import RosterItem

    roster: Any = server.server.managers["localhost"].modules["roster"]
    for one, other in ((a, b), (b, a)):
        item = RosterItem(f"{other}@localhost", subscription="both", groups=groups)
        await roster.store.put(one, "localhost", item, 1000)


async def user(
    server: RunningServer, name: str, resource: str = "x", *, available: bool = True
) -> ClientXMPP:
    """Logged in; available unless told (notifications to a bare JID need a resource that
    is available, RFC 6121 §8.5.2)."""
    client = await login(server, f"{name}@localhost/{resource}", PASSWORD, plugins=PLUGINS)
    if available:
        client.send_presence()
    return client


def options_form(client: ClientXMPP, form_type: str, **values: str) -> Form:
    form = client.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=form_type)
    for var, value in values.items():
        form.add_field(var=f"pubsub#{var}", value=value)
    return form


def payload(text: str, ns: str = "urn:example:test") -> ET.Element:
    el = ET.Element(f"{{{ns}}}entry")
    el.text = text
    return el


def error_of(exc: IqError) -> tuple[str, set[str]]:
    """The defined condition and the pubsub#errors conditions of an error reply."""
    error = exc.iq.xml.find("{jabber:client}error")
    assert error is not None
    app = {
        child.tag.split("}")[1]
        for child in error
        if child.tag.startswith("{http://jabber.org/protocol/pubsub#errors}")
    }
    return exc.condition, app


async def test_node_lifecycle_notifications_retract_purge_delete(ps_server: RunningServer) -> None:
    alice = await user(ps_server, "alice")
    bob = await user(ps_server, "bob")
    ps_a, ps_b = alice.plugin["xep_0060"], bob.plugin["xep_0060"]
    try:
        info = await alice.plugin["xep_0030"].get_info(jid=SERVICE, timeout=5)
        features = info["disco_info"]["features"]
        assert "http://jabber.org/protocol/pubsub#publish-options" in features

        config = options_form(
            alice,
            "http://jabber.org/protocol/pubsub#node_config",
            max_items="3",
            notify_retract="1",
        )
        await ps_a.create_node(SERVICE, "news", config=config, timeout=5)
        with pytest.raises(IqError) as exists:
            await ps_a.create_node(SERVICE, "news", timeout=5)
        assert exists.value.condition == "conflict"

        got = await ps_a.get_node_config(SERVICE, "news", timeout=5)
        fields = got["pubsub_owner"]["configure"]["form"].get_fields()
        assert fields["pubsub#max_items"]["value"] == "3"
        assert fields["pubsub#notify_retract"]["value"] is True

        sub = await ps_b.subscribe(SERVICE, "news", timeout=5)
        assert sub["pubsub"]["subscription"]["subscription"] == "subscribed"

        event = asyncio.ensure_future(bob.wait_until("pubsub_publish", timeout=5))
        result = await ps_a.publish(
            SERVICE, "news", id="first", payload=payload("hello"), timeout=5
        )
        assert result["pubsub"]["publish"]["item"]["id"] == "first"
        message = await event
        item = message["pubsub_event"]["items"]["item"]
        assert item["id"] == "first"
        assert item["payload"].text == "hello"

        # Bob may not publish (publish_model publishers) nor configure.
        with pytest.raises(IqError) as refused:
            await ps_b.publish(SERVICE, "news", payload=payload("spam"), timeout=5)
        assert refused.value.condition == "forbidden"
        with pytest.raises(IqError) as refused:
            await ps_b.get_node_config(SERVICE, "news", timeout=5)
        assert refused.value.condition == "forbidden"

        for n in range(5):  # max_items 3: the oldest go
            await ps_a.publish(SERVICE, "news", id=f"n{n}", payload=payload(str(n)), timeout=5)
        items = await ps_b.get_items(SERVICE, "news", timeout=5)
        assert [i["id"] for i in items["pubsub"]["items"]] == ["n2", "n3", "n4"]

        retracted = asyncio.ensure_future(bob.wait_until("pubsub_retract", timeout=5))
        await ps_a.retract(SERVICE, "news", "n3", timeout=5)
        assert (await retracted)["pubsub_event"]["items"]["retract"]["id"] == "n3"
        with pytest.raises(IqError) as missing:
            await ps_a.retract(SERVICE, "news", "n3", timeout=5)
        assert missing.value.condition == "item-not-found"

        purged = asyncio.ensure_future(bob.wait_until("pubsub_purge", timeout=5))
        await ps_a.purge(SERVICE, "news", timeout=5)
        await purged
        items = await ps_b.get_items(SERVICE, "news", timeout=5)
        assert list(items["pubsub"]["items"]) == []

        deleted = asyncio.ensure_future(bob.wait_until("pubsub_delete", timeout=5))
        await ps_a.delete_node(SERVICE, "news", timeout=5)
        await deleted
        with pytest.raises(IqError) as gone:
            await ps_b.get_items(SERVICE, "news", timeout=5)
        assert gone.value.condition == "item-not-found"
    finally:
        await close(alice)
        await close(bob)


async def test_publish_options_create_then_precondition(ps_server: RunningServer) -> None:
    alice = await user(ps_server, "alice")
    ps = alice.plugin["xep_0060"]
    try:
        opts = options_form(
            alice, "http://jabber.org/protocol/pubsub#publish-options", access_model="whitelist"
        )
        await ps.publish(SERVICE, "diary", payload=payload("dear diary"), options=opts, timeout=5)
        config = await ps.get_node_config(SERVICE, "diary", timeout=5)
        fields = config["pubsub_owner"]["configure"]["form"].get_fields()
        assert fields["pubsub#access_model"]["value"] == "whitelist"

        opts = options_form(
            alice, "http://jabber.org/protocol/pubsub#publish-options", access_model="open"
        )
        with pytest.raises(IqError) as mismatch:
            await ps.publish(SERVICE, "diary", payload=payload("x"), options=opts, timeout=5)
        assert error_of(mismatch.value) == ("conflict", {"precondition-not-met"})

        big = payload("x" * 70000)
        with pytest.raises(IqError) as too_big:
            await ps.publish(SERVICE, "diary", payload=big, timeout=5)
        assert error_of(too_big.value) == ("not-acceptable", {"payload-too-big"})

        opts = options_form(
            alice, "http://jabber.org/protocol/pubsub#publish-options", access_model="nobody"
        )
        with pytest.raises(IqError) as unknown:
            await ps.publish(SERVICE, "other", payload=payload("x"), options=opts, timeout=5)
        assert unknown.value.condition == "not-acceptable"
    finally:
        await close(alice)


async def test_items_paged_with_rsm_and_max_items(ps_server: RunningServer) -> None:
    alice = await user(ps_server, "alice")
    ps = alice.plugin["xep_0060"]
    try:
        config = options_form(
            alice, "http://jabber.org/protocol/pubsub#node_config", max_items="max"
        )
        await ps.create_node(SERVICE, "log", config=config, timeout=5)
        for n in range(7):
            await ps.publish(SERVICE, "log", id=f"i{n}", payload=payload(str(n)), timeout=5)
        newest = await ps.get_items(SERVICE, "log", max_items=2, timeout=5)
        assert [i["id"] for i in newest["pubsub"]["items"]] == ["i5", "i6"]
        some = await ps.get_items(SERVICE, "log", item_ids=["i1", "i4"], timeout=5)
        assert [i["id"] for i in some["pubsub"]["items"]] == ["i1", "i4"]

        pages = []
        query = alice.Iq(sto=SERVICE, stype="get")
        query["pubsub"]["items"]["node"] = "log"
        async for page in alice.plugin["xep_0059"].iterate(query, "pubsub", "items", amount=3):
            pages.append([i["id"] for i in page["pubsub"]["items"]])
            if len(pages) > 10:
                break
        assert pages == [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i6"]]

        iq = alice.Iq(sto=SERVICE, stype="get")
        iq["pubsub"]["items"]["node"] = "log"
        iq["pubsub"]["rsm"]["max"] = "3"
        iq["pubsub"]["rsm"]["after"] = "i1"
        page = await iq.send(timeout=5)
        assert [i["id"] for i in page["pubsub"]["items"]] == ["i2", "i3", "i4"]
        assert page["pubsub"]["rsm"]["count"] == "7"
        assert page["pubsub"]["rsm"]["first_index"] == "2"
    finally:
        await close(alice)


async def test_roster_only_node_invisible_to_a_stranger(ps_server: RunningServer) -> None:
    await befriend(ps_server, "alice", "bob", groups=("friends",))
    alice = await user(ps_server, "alice")
    bob = await user(ps_server, "bob")
    carol = await user(ps_server, "carol")
    try:
        config = options_form(
            alice,
            "http://jabber.org/protocol/pubsub#node_config",
            access_model="roster",
            roster_groups_allowed="friends",
        )
        await alice.plugin["xep_0060"].create_node(SERVICE, "plans", config=config, timeout=5)
        await alice.plugin["xep_0060"].publish(SERVICE, "plans", payload=payload("p"), timeout=5)

        seen = await bob.plugin["xep_0060"].get_items(SERVICE, "plans", timeout=5)
        assert len(list(seen["pubsub"]["items"])) == 1
        with pytest.raises(IqError) as refused:
            await carol.plugin["xep_0060"].get_items(SERVICE, "plans", timeout=5)
        assert error_of(refused.value) == ("not-authorized", {"not-in-roster-group"})
        with pytest.raises(IqError):
            await carol.plugin["xep_0060"].subscribe(SERVICE, "plans", timeout=5)

        listed = await carol.plugin["xep_0030"].get_items(jid=SERVICE, timeout=5)
        assert "plans" not in [i[1] for i in listed["disco_items"]["items"]]
        listed = await bob.plugin["xep_0030"].get_items(jid=SERVICE, timeout=5)
        assert "plans" in [i[1] for i in listed["disco_items"]["items"]]
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def online_with_interest(server: RunningServer, name: str, *nodes: str) -> ClientXMPP:
    """Logged in, +notify for ``nodes`` in its caps, and available."""
    client = await user(server, name, available=False)
    for node in nodes:
        client.plugin["xep_0163"].add_interest(node)
    await client.plugin["xep_0115"].update_caps()
    client.send_presence()
    return client


async def test_pep_avatar_reaches_contacts_not_strangers(ps_server: RunningServer) -> None:
    await befriend(ps_server, "alice", "bob")
    bob = await online_with_interest(ps_server, "bob", AVATAR_META)
    carol = await online_with_interest(ps_server, "carol", AVATAR_META)
    alice = await online_with_interest(ps_server, "alice")
    try:
        await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=5)  # let caps settle
        await asyncio.sleep(0.3)
        got = asyncio.ensure_future(bob.wait_until("avatar_metadata_publish", timeout=5))
        avatars = alice.plugin["xep_0084"]
        data = b"\x89PNG fake image bytes"
        avatar_id = avatars.generate_id(data)
        await avatars.publish_avatar(data, timeout=5)
        await avatars.publish_avatar_metadata(
            items=[{"id": avatar_id, "type": "image/png", "bytes": len(data)}], timeout=5
        )
        message = await got
        assert str(message["from"]) == "alice@localhost"
        info = message["pubsub_event"]["items"]["item"]["avatar_metadata"]["items"]
        assert info[0]["id"] == avatar_id

        fetched = await bob.plugin["xep_0084"].retrieve_avatar(
            "alice@localhost", avatar_id, timeout=5
        )
        assert fetched["pubsub"]["items"]["item"]["avatar_data"]["value"] == data

        with pytest.raises(IqError) as refused:
            await carol.plugin["xep_0084"].retrieve_avatar("alice@localhost", avatar_id, timeout=5)
        assert error_of(refused.value) == ("not-authorized", {"presence-subscription-required"})
        with pytest.raises(asyncio.TimeoutError):
            await carol.wait_until("avatar_metadata_publish", timeout=0.5)

        # A missing account looks like an account without that node.
        with pytest.raises(IqError) as nobody:
            await carol.plugin["xep_0060"].get_items("nobody@localhost", AVATAR_META, timeout=5)
        assert nobody.value.condition == "item-not-found"
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_last_item_sent_when_a_contact_with_notify_comes_online(
    ps_server: RunningServer,
) -> None:
    """XEP-0163 §4.3.2 with XEP-0115: Heron asks the new resource for its features."""
    await befriend(ps_server, "alice", "bob")
    alice = await user(ps_server, "alice")
    try:
        await alice.plugin["xep_0172"].publish_nick("Alice in Wonderland", timeout=5)
        bob = await user(ps_server, "bob", available=False)
        try:
            bob.plugin["xep_0163"].add_interest("http://jabber.org/protocol/nick")
            await bob.plugin["xep_0115"].update_caps()
            got = asyncio.ensure_future(bob.wait_until("user_nick_publish", timeout=5))
            bob.send_presence()
            message = await got
            assert message["pubsub_event"]["items"]["item"]["nick"]["nick"] == (
                "Alice in Wonderland"
            )
        finally:
            await close(bob)
    finally:
        await close(alice)


async def test_bookmarks_stay_private(ps_server: RunningServer) -> None:
    """XEP-0402 with the XEP-0223 publish-options: the owner's other resource hears of it;
    a contact cannot read it."""
    await befriend(ps_server, "alice", "bob")
    laptop = await online_with_interest(ps_server, "alice", BOOKMARKS)
    bob = await online_with_interest(ps_server, "bob", BOOKMARKS)
    phone = await user(ps_server, "alice", "phone")
    try:
        await asyncio.sleep(0.3)
        heard = asyncio.ensure_future(laptop.wait_until("pubsub_publish", timeout=5))
        conference = ET.Element(f"{{{BOOKMARKS}}}conference", {"name": "Lounge", "autojoin": "1"})
        opts = options_form(
            phone,
            "http://jabber.org/protocol/pubsub#publish-options",
            persist_items="1",
            access_model="whitelist",
            max_items="max",
            send_last_published_item="never",
        )
        await phone.plugin["xep_0060"].publish(
            "alice@localhost", BOOKMARKS, id="lounge@conference.localhost",
            payload=conference, options=opts, timeout=5,
        )  # fmt: skip
        message = await heard
        assert message["pubsub_event"]["items"]["item"]["id"] == "lounge@conference.localhost"

        mine = await phone.plugin["xep_0060"].get_items("alice@localhost", BOOKMARKS, timeout=5)
        assert [i["id"] for i in mine["pubsub"]["items"]] == ["lounge@conference.localhost"]
        with pytest.raises(IqError) as refused:
            await bob.plugin["xep_0060"].get_items("alice@localhost", BOOKMARKS, timeout=5)
        assert error_of(refused.value) == ("not-allowed", {"closed-node"})
        with pytest.raises(asyncio.TimeoutError):
            await bob.wait_until("pubsub_publish", timeout=0.5)
        with pytest.raises(IqError) as forbidden:
            await bob.plugin["xep_0060"].publish(
                "alice@localhost", BOOKMARKS, payload=conference, timeout=5
            )
        assert forbidden.value.condition == "forbidden"
    finally:
        for client in (laptop, bob, phone):
            await close(client)


async def test_items_survive_a_restart(config_factory: Callable[..., ServerConfig]) -> None:
    config = config_factory()
    running = await start(config)
    await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    alice = await user(running, "alice")
    try:
        await alice.plugin["xep_0060"].publish(
            SERVICE, "kept", id="one", payload=payload("still here"), timeout=5
        )
    finally:
        await close(alice)
        await running.stop()
    running = await start(config)
    alice = await user(running, "alice")
    try:
        items = await alice.plugin["xep_0060"].get_items(SERVICE, "kept", timeout=5)
        (item,) = list(items["pubsub"]["items"])
        assert item["id"] == "one"
        assert item["payload"].text == "still here"
    finally:
        await close(alice)
        await running.stop()


async def test_authorize_node_owner_approves_by_form(ps_server: RunningServer) -> None:
    """XEP-0060 §6.1.2 and §8.6: pending, a form to the owner, approval by message."""
    alice = await user(ps_server, "alice")
    bob = await user(ps_server, "bob")
    try:
        config = options_form(
            alice, "http://jabber.org/protocol/pubsub#node_config", access_model="authorize"
        )
        await alice.plugin["xep_0060"].create_node(SERVICE, "club", config=config, timeout=5)
        await alice.plugin["xep_0060"].publish(SERVICE, "club", payload=payload("m"), timeout=5)
        asked = asyncio.ensure_future(alice.wait_until("message_xform", timeout=5))
        sub = await bob.plugin["xep_0060"].subscribe(SERVICE, "club", timeout=5)
        assert sub["pubsub"]["subscription"]["subscription"] == "pending"
        with pytest.raises(IqError) as waiting:
            await bob.plugin["xep_0060"].get_items(SERVICE, "club", timeout=5)
        assert error_of(waiting.value) == ("not-authorized", {"pending-subscription"})

        request = await asked
        form = request["form"]
        fields = form.get_fields()
        assert form["type"] == "form"

        def value(var: str) -> str:
            got = fields[var]["value"]  # slixmpp gives hidden fields as lists
            return str(got[0] if isinstance(got, list) else got)

        assert value("FORM_TYPE") == "http://jabber.org/protocol/pubsub#subscribe_authorization"
        assert value("pubsub#subscriber_jid") == "bob@localhost"
        answer = alice.make_message(mto=SERVICE)
        submitted = alice.plugin["xep_0004"].make_form(ftype="submit")
        for var in ("FORM_TYPE", "pubsub#subid", "pubsub#node", "pubsub#subscriber_jid"):
            submitted.add_field(var=var, value=value(var))
        submitted.add_field(var="pubsub#allow", ftype="boolean", value=True)
        answer.append(submitted)
        approved = asyncio.ensure_future(bob.wait_until("pubsub_subscription", timeout=5))
        answer.send()
        event = await approved
        assert event["pubsub_event"]["subscription"]["subscription"] == "subscribed"
        items = await bob.plugin["xep_0060"].get_items(SERVICE, "club", timeout=5)
        assert len(list(items["pubsub"]["items"])) == 1
    finally:
        await close(alice)
        await close(bob)


async def test_subscription_option_deliver_off_stops_notifications(
    ps_server: RunningServer,
) -> None:
    """XEP-0060 §6.3: get the options form, submit pubsub#deliver false."""
    alice = await user(ps_server, "alice")
    bob = await user(ps_server, "bob")
    ps_a, ps_b = alice.plugin["xep_0060"], bob.plugin["xep_0060"]
    try:
        await ps_a.create_node(SERVICE, "quiet", timeout=5)
        sub = await ps_b.subscribe(SERVICE, "quiet", timeout=5)
        subid = sub["pubsub"]["subscription"]["subid"]
        subscriber = str(sub["pubsub"]["subscription"]["jid"])
        got = await ps_b.get_subscription_options(SERVICE, "quiet", user_jid=subscriber, timeout=5)
        deliver = got.xml.find(
            ".//{jabber:x:data}field[@var='pubsub#deliver']/{jabber:x:data}value"
        )
        assert deliver is not None
        assert deliver.text == "1"

        async def set_options(**values: str) -> None:
            # COMPAT: slixmpp 1.17's set_subscription_options sends type 'get'.
            iq = bob.Iq(sto=SERVICE, stype="set")
            iq["pubsub"]["options"]["node"] = "quiet"
            iq["pubsub"]["options"]["jid"] = subscriber
            iq["pubsub"]["options"]["subid"] = subid
            form = options_form(bob, "http://jabber.org/protocol/pubsub#subscribe_options")
            for var, value in values.items():
                form.add_field(var=var, value=value)
            iq["pubsub"]["options"].append(form)
            await iq.send(timeout=5)

        await set_options(**{"pubsub#deliver": "0"})
        await ps_a.publish(SERVICE, "quiet", payload=payload("shh"), timeout=5)
        with pytest.raises(asyncio.TimeoutError):
            await bob.wait_until("pubsub_publish", timeout=0.5)
        with pytest.raises(IqError) as bad:
            await set_options(**{"pubsub#digest": "1"})
        assert error_of(bad.value) == ("bad-request", {"invalid-options"})
    finally:
        await close(alice)
        await close(bob)
