"""Collection nodes (XEP-0060 §9, XEP-0248) at pubsub.localhost with slixmpp: a site's
collection with a sensor leaf; a subscriber of the site, with the "items" subscription type,
gets the sensor's items, the event naming the sensor and a SHIM header the site; the
subscription survives a restart. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from slixmpp.exceptions import IqError

from heron.app import start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close
from tests.integration.test_pubsub import (
    PASSWORD,
    SERVICE,
    error_of,
    options_form,
    payload,
    user,
)

pytestmark = pytest.mark.both_engines
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
SHIM = "{http://jabber.org/protocol/shim}"


async def test_a_site_subscriber_gets_every_sensor(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory()
    running = await start(config)
    for name in ("alice", "bob"):
        await running.server.accounts.create(JID.parse(f"{name}@localhost"), PASSWORD)
    alice, bob = await user(running, "alice"), await user(running, "bob")
    try:
        ps_a, ps_b = alice.plugin["xep_0060"], bob.plugin["xep_0060"]
        info = await alice.plugin["xep_0030"].get_info(SERVICE, timeout=5)
        assert "http://jabber.org/protocol/pubsub#collections" in info["disco_info"]["features"]
        collection = options_form(alice, NODE_CONFIG, node_type="collection")
        await ps_a.create_node(SERVICE, "site-1", config=collection, timeout=5)
        leaf = options_form(alice, NODE_CONFIG, collection="site-1")
        await ps_a.create_node(SERVICE, "temp", config=leaf, timeout=5)
        info = await alice.plugin["xep_0030"].get_info(SERVICE, node="site-1", timeout=5)
        assert ("pubsub", "collection", None, None) in info["disco_info"]["identities"]
        items = await alice.plugin["xep_0030"].get_items(SERVICE, node="site-1", timeout=5)
        assert [i[1] for i in items["disco_items"]["items"]] == ["temp"]

        sub = await ps_b.subscribe(SERVICE, "site-1", timeout=5)
        iq = bob.Iq(sto=SERVICE, stype="set")
        iq["pubsub"]["options"]["node"] = "site-1"
        iq["pubsub"]["options"]["jid"] = str(sub["pubsub"]["subscription"]["jid"])
        form = options_form(bob, "http://jabber.org/protocol/pubsub#subscribe_options")
        form.add_field(var="pubsub#subscription_type", value="items")
        iq["pubsub"]["options"].append(form)
        await iq.send(timeout=5)
    finally:
        await close(alice)
        await close(bob)
        await running.stop()

    running = await start(config)  # the subscription and its type are stored
    alice, bob = await user(running, "alice"), await user(running, "bob")
    try:
        got = asyncio.ensure_future(bob.wait_until("pubsub_publish", timeout=10))
        await alice.plugin["xep_0060"].publish(
            SERVICE, "temp", id="r1", payload=payload("21.5"), timeout=5
        )
        message = await got
        assert message["pubsub_event"]["items"]["node"] == "temp"
        header = message.xml.find(f"{SHIM}headers/{SHIM}header[@name='Collection']")
        assert header is not None
        assert header.text == "site-1"
        with pytest.raises(IqError) as refused:  # a collection holds no items
            await alice.plugin["xep_0060"].publish(
                SERVICE, "site-1", payload=payload("x"), timeout=5
            )
        assert error_of(refused.value) == ("feature-not-implemented", {"unsupported"})
    finally:
        await close(alice)
        await close(bob)
        await running.stop()
