"""Collection nodes (XEP-0060 §9, XEP-0248) in the sans-IO engine: one collection per site,
a leaf per sensor, and subscribers of the site hearing every sensor."""

from __future__ import annotations

import pytest

from heron import ns
from heron.jid import JID
from heron.modules.pubsub.engine import NO_RELATION, PubsubService
from heron.stanza import StanzaError
from tests.unit.test_pubsub_engine import ALICE, BOB, CAROL, conditions, form, item, service

SITE = "site-1"


def site(svc: PubsubService, *sensors: str) -> None:
    svc.create(SITE, ALICE, form(ns.PUBSUB_NODE_CONFIG, node_type="collection"))
    for sensor in sensors:
        svc.create(sensor, ALICE, form(ns.PUBSUB_NODE_CONFIG, collection=SITE))
    svc.drain()


def subscribe(svc: PubsubService, who: JID, name: str, **options: str) -> None:
    sub = svc.subscribe(name, who, who, NO_RELATION)
    if options:
        svc.set_options(name, who, who, sub.subid, form(ns.PUBSUB_SUBSCRIBE_OPTIONS, **options))
    svc.drain()


def test_items_of_every_sensor_reach_the_site_subscriber() -> None:
    svc = service()
    site(svc, "temp", "humidity")
    subscribe(svc, BOB, SITE, subscription_type="items")
    svc.publish("temp", ALICE, item("21.5"))
    svc.publish("humidity", ALICE, item("40"))
    notes = svc.drain().notifications
    assert [(n.to, n.collection) for n in notes] == [(BOB, SITE), (BOB, SITE)]
    # The event names the sensor's node, not the collection (XEP-0248 §5.3).
    nodes = [n.event.find("items", ns.PUBSUB_EVENT).attrs["node"] for n in notes]  # type: ignore[union-attr]
    assert nodes == ["temp", "humidity"]


def test_default_subscription_type_is_nodes() -> None:
    svc = service()
    site(svc, "temp")
    subscribe(svc, BOB, SITE)  # XEP-0248 §6.1: "nodes" unless asked otherwise
    svc.publish("temp", ALICE, item("21.5"))
    assert svc.drain().notifications == []
    svc.create("pressure", ALICE, form(ns.PUBSUB_NODE_CONFIG, collection=SITE))
    (note,) = svc.drain().notifications
    assert note.to == BOB
    assert note.collection == SITE
    assert note.event.find("create", ns.PUBSUB_EVENT) is not None


def test_depth_limits_how_far_down_a_subscription_hears() -> None:
    svc = service()
    svc.create("region", ALICE, form(ns.PUBSUB_NODE_CONFIG, node_type="collection"))
    svc.create(
        SITE, ALICE, form(ns.PUBSUB_NODE_CONFIG, node_type="collection", collection="region")
    )
    svc.create("temp", ALICE, form(ns.PUBSUB_NODE_CONFIG, collection=SITE))
    svc.drain()
    subscribe(svc, BOB, "region", subscription_type="items")  # depth 1: only direct nodes
    subscribe(svc, CAROL, "region", subscription_type="all", subscription_depth="all")
    svc.publish("temp", ALICE, item("21.5"))
    notes = svc.drain().notifications
    assert [(n.to, n.collection) for n in notes] == [(CAROL, "region")]


def test_a_direct_subscriber_hears_once() -> None:
    svc = service()
    site(svc, "temp")
    subscribe(svc, BOB, SITE, subscription_type="items")
    subscribe(svc, BOB, "temp")
    svc.publish("temp", ALICE, item("21.5"))
    (note,) = svc.drain().notifications
    assert note.collection == ""  # the direct subscription, without the header


def test_collections_hold_no_items_and_admit_no_cycles() -> None:
    svc = service()
    site(svc, "temp")
    with pytest.raises(StanzaError) as exc:
        svc.publish(SITE, ALICE, item("x"))
    assert conditions(exc) == ("feature-not-implemented", "unsupported")
    with pytest.raises(StanzaError) as exc:  # a leaf holds no nodes
        svc.create("x", ALICE, form(ns.PUBSUB_NODE_CONFIG, collection="temp"))
    assert exc.value.condition == "not-acceptable"
    with pytest.raises(StanzaError) as exc:  # site inside itself
        svc.configure(SITE, ALICE, form(ns.PUBSUB_NODE_CONFIG, collection=SITE))
    assert exc.value.condition == "not-acceptable"
    svc.create("inner", ALICE, form(ns.PUBSUB_NODE_CONFIG, node_type="collection", collection=SITE))
    with pytest.raises(StanzaError) as exc:  # site under its own child: a cycle
        svc.configure(SITE, ALICE, form(ns.PUBSUB_NODE_CONFIG, collection="inner"))
    assert exc.value.condition == "not-acceptable"
    with pytest.raises(StanzaError) as exc:  # the type is chosen at creation
        svc.configure("temp", ALICE, form(ns.PUBSUB_NODE_CONFIG, node_type="collection"))
    assert exc.value.condition == "not-acceptable"


def test_only_owners_of_a_collection_put_nodes_in_it() -> None:
    svc = service()
    site(svc)
    with pytest.raises(StanzaError) as exc:
        svc.create("bobs", BOB, form(ns.PUBSUB_NODE_CONFIG, collection=SITE))
    assert exc.value.condition == "forbidden"
    assert "bobs" not in svc.nodes


def test_deleting_a_collection_frees_its_nodes() -> None:
    svc = service()
    site(svc, "temp")
    svc.delete(SITE, ALICE)
    out = svc.drain()
    assert svc.nodes["temp"].config.collection == ""
    assert "temp" in out.saved_nodes
    assert svc.children(SITE, ALICE) == []


def test_collection_options_round_trip() -> None:
    svc = service()
    site(svc, "temp")
    subscribe(svc, BOB, SITE, subscription_type="items", subscription_depth="all")
    options = svc.options(SITE, BOB, BOB)
    values = {
        f.attrs["var"]: f.child_text("value", f.ns) for f in options.find_all("field", options.ns)
    }
    assert values["pubsub#subscription_type"] == "items"
    assert values["pubsub#subscription_depth"] == "all"
    sub = svc.nodes[SITE].subscriptions[BOB]
    with pytest.raises(StanzaError) as exc:
        svc.set_options(
            SITE, BOB, BOB, sub.subid, form(ns.PUBSUB_SUBSCRIBE_OPTIONS, subscription_type="x")
        )
    assert conditions(exc) == ("bad-request", "invalid-options")
    with pytest.raises(StanzaError):  # not an option of a leaf subscription
        subscribe(svc, BOB, "temp", subscription_type="items")
    assert svc.children(SITE, BOB) == ["temp"]
