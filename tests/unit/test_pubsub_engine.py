"""The sans-IO pubsub engine, its configuration forms and XEP-0115 hashes: no sockets."""

from __future__ import annotations

import itertools

import pytest

from heron import ns
from heron.jid import JID
from heron.modules.pubsub.config import NodeConfig, config_form
from heron.modules.pubsub.engine import (
    NO_RELATION,
    Page,
    Policy,
    PubsubService,
    Relation,
)
from heron.stanza import StanzaError
from heron.stanza.caps import Caps, CapsCache, ver_of
from heron.xmlstream.element import Element

SERVICE = JID.parse("pubsub.example.org")
ALICE = JID.parse("alice@example.org/phone")
BOB = JID.parse("bob@example.org/laptop")
CAROL = JID.parse("carol@elsewhere.example/x")
PUBSUB = "http://jabber.org/protocol/pubsub"


def service(*, owner: JID | None = None, **policy: object) -> PubsubService:
    counter = itertools.count()
    return PubsubService(
        owner or SERVICE,
        Policy(**policy),  # type: ignore[arg-type]  # keyword options of the test
        owner=owner,
        make_id=lambda: f"id{next(counter)}",
    )


def form(form_type: str, **values: str | list[str]) -> Element:
    x = Element("x", ns.DATA_FORMS, {"type": "submit"})
    x.add("field", ns.DATA_FORMS, {"var": "FORM_TYPE"}).add("value", ns.DATA_FORMS, text=form_type)
    for var, value in values.items():
        field = x.add("field", ns.DATA_FORMS, {"var": f"pubsub#{var}"})
        for v in [value] if isinstance(value, str) else value:
            field.add("value", ns.DATA_FORMS, text=v)
    return x


def item(text: str, item_id: str | None = None) -> Element:
    el = Element("item", PUBSUB, {"id": item_id} if item_id else {})
    el.add("entry", "urn:example", text=text)
    return el


def conditions(exc: pytest.ExceptionInfo[StanzaError]) -> tuple[str, str | None]:
    extra = exc.value.extra
    return str(
        exc.value.condition
    ), extra.tag if extra is not None and extra.ns == ns.PUBSUB_ERRORS else None


def test_create_publish_notify_and_trim() -> None:
    svc = service()
    svc.create("news", ALICE, form(ns.PUBSUB_NODE_CONFIG, max_items="2"))
    svc.subscribe("news", BOB, BOB.bare, NO_RELATION)
    svc.drain()
    for n in range(3):
        svc.publish("news", ALICE, item(str(n), f"i{n}"))
    out = svc.drain()
    assert list(svc.nodes["news"].items) == ["i1", "i2"]
    assert out.deleted_items == [("news", "i0")]
    assert [n.to for n in out.notifications] == [BOB.bare] * 3
    event = out.notifications[-1].event
    items = event.find("items", ns.PUBSUB_EVENT)
    assert items is not None
    published = items.find("item", ns.PUBSUB_EVENT)
    assert published is not None
    assert published.attrs == {"id": "i2", "publisher": "alice@example.org"}
    assert published.first() is not None


def test_same_id_replaces_and_becomes_newest() -> None:
    svc = service()
    svc.create("n", ALICE, form(ns.PUBSUB_NODE_CONFIG, max_items="max"))
    svc.publish("n", ALICE, item("a", "x"))
    svc.publish("n", ALICE, item("b", "y"))
    svc.publish("n", ALICE, item("c", "x"))
    assert list(svc.nodes["n"].items) == ["y", "x"]
    _node, found, _ = svc.items("n", BOB, NO_RELATION)
    assert [i.id for i in found] == ["y", "x"]


def test_publish_errors() -> None:
    svc = service(max_payload_bytes=100)
    with pytest.raises(StanzaError) as missing:
        svc.publish("nothing", ALICE, item("x"))
    assert conditions(missing) == ("item-not-found", None)
    svc.create("n", ALICE)
    with pytest.raises(StanzaError) as refused:
        svc.publish("n", BOB, item("x"))
    assert conditions(refused) == ("forbidden", None)
    with pytest.raises(StanzaError) as big:
        svc.publish("n", ALICE, item("x" * 200))
    assert conditions(big) == ("not-acceptable", "payload-too-big")
    with pytest.raises(StanzaError) as empty:
        svc.publish("n", ALICE, Element("item", PUBSUB))
    assert conditions(empty) == ("bad-request", "payload-required")
    two = item("a")
    two.add("other", "urn:example")
    with pytest.raises(StanzaError) as many:
        svc.publish("n", ALICE, two)
    assert conditions(many) == ("bad-request", "invalid-payload")
    with pytest.raises(StanzaError) as none:
        svc.publish("n", ALICE, None)
    assert conditions(none) == ("bad-request", "item-required")
    with pytest.raises(StanzaError) as no_node:
        svc.publish("", ALICE, item("x"))
    assert conditions(no_node) == ("bad-request", "nodeid-required")


def test_publish_options_create_and_preconditions() -> None:
    svc = service()
    options = form(ns.PUBSUB_PUBLISH_OPTIONS, access_model="whitelist", persist_items="true")
    svc.publish("private", ALICE, item("x"), options, may_create=True)
    assert svc.nodes["private"].config.access_model == "whitelist"
    svc.publish("private", ALICE, item("y"), options)  # same options: fine
    with pytest.raises(StanzaError) as mismatch:
        svc.publish(
            "private", ALICE, item("z"), form(ns.PUBSUB_PUBLISH_OPTIONS, access_model="open")
        )
    assert conditions(mismatch) == ("conflict", "precondition-not-met")
    with pytest.raises(StanzaError) as unknown:
        svc.publish("private", ALICE, item("z"), form(ns.PUBSUB_PUBLISH_OPTIONS, colour="blue"))
    assert conditions(unknown) == ("conflict", "precondition-not-met")
    with pytest.raises(StanzaError) as bad:
        svc.publish("other", ALICE, item("z"), form(ns.PUBSUB_PUBLISH_OPTIONS, max_items="0"))
    assert conditions(bad) == ("not-acceptable", None)
    assert "other" not in svc.nodes


def test_access_models() -> None:
    svc = service()
    svc.create("presence", ALICE, form(ns.PUBSUB_NODE_CONFIG, access_model="presence"))
    svc.create(
        "roster",
        ALICE,
        form(
            ns.PUBSUB_NODE_CONFIG,
            access_model="roster",
            roster_groups_allowed=["friends", "family"],
        ),
    )
    svc.create("whitelist", ALICE, form(ns.PUBSUB_NODE_CONFIG, access_model="whitelist"))
    with pytest.raises(StanzaError) as no_sub:
        svc.items("presence", BOB, NO_RELATION)
    assert conditions(no_sub) == ("not-authorized", "presence-subscription-required")
    svc.items("presence", BOB, Relation(subscribed=True))
    with pytest.raises(StanzaError) as wrong_group:
        svc.items("roster", BOB, Relation(True, True, frozenset({"work"})))
    assert conditions(wrong_group) == ("not-authorized", "not-in-roster-group")
    svc.items("roster", BOB, Relation(True, True, frozenset({"family"})))
    with pytest.raises(StanzaError) as closed:
        svc.subscribe("whitelist", BOB, BOB, NO_RELATION)
    assert conditions(closed) == ("not-allowed", "closed-node")
    svc.set_affiliations("whitelist", ALICE, [(BOB.bare, "member")])
    svc.subscribe("whitelist", BOB, BOB, NO_RELATION)
    svc.set_affiliations("whitelist", ALICE, [(BOB.bare, "outcast")])
    assert svc.nodes["whitelist"].subscriptions == {}
    with pytest.raises(StanzaError) as banned:
        svc.items("whitelist", BOB, NO_RELATION)
    assert conditions(banned) == ("forbidden", None)


def answer(request: Element, allow: bool) -> Element:
    """The owner's submitted copy of an authorization request form (§8.6)."""
    values = {
        f.attrs["var"]: f.child_text("value", ns.DATA_FORMS) or ""
        for f in request.find_all("field", ns.DATA_FORMS)
    }
    submitted = form(ns.PUBSUB_SUBSCRIBE_AUTHORIZATION, allow="true" if allow else "false")
    for var in ("pubsub#node", "pubsub#subid", "pubsub#subscriber_jid"):
        submitted.add("field", ns.DATA_FORMS, {"var": var}).add(
            "value", ns.DATA_FORMS, text=values[var]
        )
    return submitted


def test_authorize_access_model_waits_for_an_owner() -> None:
    svc = service()
    svc.create("club", ALICE, form(ns.PUBSUB_NODE_CONFIG, access_model="authorize"))
    svc.publish("club", ALICE, item("secret", "s1"))
    svc.drain()
    sub = svc.subscribe("club", BOB, BOB, NO_RELATION)
    assert sub.state == "pending"
    (request,) = svc.drain().notifications
    assert request.to == ALICE.bare
    assert request.type == "normal"
    assert request.event.tag == "x"
    with pytest.raises(StanzaError) as pending:
        svc.items("club", BOB, NO_RELATION)
    assert conditions(pending) == ("not-authorized", "pending-subscription")
    with pytest.raises(StanzaError) as stranger:
        svc.items("club", CAROL, NO_RELATION)
    assert conditions(stranger) == ("not-authorized", "not-subscribed")
    svc.publish("club", ALICE, item("more", "s2"))
    assert svc.drain().notifications == []  # nothing to a pending subscriber

    with pytest.raises(StanzaError) as not_owner:
        svc.authorize(BOB, answer(request.event, allow=True))
    assert conditions(not_owner) == ("forbidden", None)
    svc.authorize(ALICE, answer(request.event, allow=True))
    told = svc.drain().notifications
    assert [n.to for n in told] == [BOB, BOB]  # approval, then the last item
    approved = told[0].event.find("subscription", ns.PUBSUB_EVENT)
    assert approved is not None
    assert approved.attrs["subscription"] == "subscribed"
    assert [i.id for i in svc.items("club", BOB, NO_RELATION)[1]] == ["s2"]  # max_items 1
    with pytest.raises(StanzaError) as twice:
        svc.authorize(ALICE, answer(request.event, allow=True))
    assert conditions(twice) == ("item-not-found", None)

    svc.subscribe("club", CAROL, CAROL, NO_RELATION)
    (request,) = svc.drain().notifications
    svc.authorize(ALICE, answer(request.event, allow=False))
    (denied,) = svc.drain().notifications
    assert denied.to == CAROL
    assert CAROL not in svc.nodes["club"].subscriptions


def test_subscription_option_deliver() -> None:
    svc = service()
    svc.create("n", ALICE)
    sub = svc.subscribe("n", BOB, BOB, NO_RELATION)
    options = svc.options("n", BOB, BOB)
    assert options.find("field", ns.DATA_FORMS) is not None
    svc.set_options("n", BOB, BOB, sub.subid, form(ns.PUBSUB_SUBSCRIBE_OPTIONS, deliver="0"))
    svc.drain()
    svc.publish("n", ALICE, item("quiet"))
    assert svc.drain().notifications == []
    svc.set_options("n", BOB, BOB, None, form(ns.PUBSUB_SUBSCRIBE_OPTIONS, deliver="1"))
    svc.publish("n", ALICE, item("loud"))
    assert [n.to for n in svc.drain().notifications] == [BOB]
    with pytest.raises(StanzaError) as unknown:
        svc.set_options("n", BOB, BOB, None, form(ns.PUBSUB_SUBSCRIBE_OPTIONS, digest="1"))
    assert conditions(unknown) == ("bad-request", "invalid-options")
    with pytest.raises(StanzaError) as wrong_subid:
        svc.options("n", BOB, BOB, "nope")
    assert conditions(wrong_subid) == ("not-acceptable", "invalid-subid")
    with pytest.raises(StanzaError) as someone_else:
        svc.options("n", CAROL, BOB)
    assert conditions(someone_else) == ("forbidden", None)
    with pytest.raises(StanzaError) as not_subscribed:
        svc.options("n", CAROL, CAROL)
    assert conditions(not_subscribed) == ("unexpected-request", "not-subscribed")


def test_subscriptions_and_last_item() -> None:
    svc = service()
    svc.create("n", ALICE)
    svc.publish("n", ALICE, item("last", "only"))
    svc.drain()
    with pytest.raises(StanzaError) as other:
        svc.subscribe("n", BOB, CAROL, NO_RELATION)
    assert conditions(other) == ("bad-request", "invalid-jid")
    sub = svc.subscribe("n", BOB, BOB, NO_RELATION)
    assert sub.state == "subscribed"
    out = svc.drain()
    assert [n.to for n in out.notifications] == [BOB]  # send_last_published_item
    assert svc.subscribe("n", BOB, BOB, NO_RELATION) is sub
    assert svc.subscriptions_of(BOB) == [("n", sub)]
    with pytest.raises(StanzaError) as wrong_subid:
        svc.unsubscribe("n", BOB, BOB, "nope")
    assert conditions(wrong_subid) == ("not-acceptable", "invalid-subid")
    svc.unsubscribe("n", BOB, BOB)
    with pytest.raises(StanzaError) as again:
        svc.unsubscribe("n", BOB, BOB)
    assert conditions(again) == ("unexpected-request", "not-subscribed")


def test_owner_operations_are_for_owners() -> None:
    svc = service()
    svc.create("n", ALICE)
    for call in (
        lambda: svc.configuration("n", BOB),
        lambda: svc.delete("n", BOB),
        lambda: svc.purge("n", BOB),
        lambda: svc.node_affiliations("n", BOB),
        lambda: svc.set_subscriptions("n", BOB, [(CAROL, "subscribed")]),
    ):
        with pytest.raises(StanzaError) as refused:
            call()
        assert conditions(refused) == ("forbidden", None)
    with pytest.raises(StanzaError) as last_owner:
        svc.set_affiliations("n", ALICE, [(ALICE.bare, "none")])
    assert conditions(last_owner) == ("not-acceptable", None)
    svc.set_subscriptions("n", ALICE, [(CAROL, "subscribed")])
    assert CAROL in svc.nodes["n"].subscriptions
    svc.drain()
    svc.delete("n", ALICE)
    out = svc.drain()
    assert out.deleted_nodes == {"n"}
    assert [n.to for n in out.notifications] == [CAROL]
    assert out.notifications[0].event.find("delete", ns.PUBSUB_EVENT) is not None


def test_retract_and_purge() -> None:
    svc = service()
    svc.create("n", ALICE, form(ns.PUBSUB_NODE_CONFIG, max_items="10", publish_model="open"))
    svc.subscribe("n", ALICE, ALICE.bare, NO_RELATION)
    svc.publish("n", ALICE, item("a", "a"))
    svc.publish("n", BOB, item("b", "b"))
    svc.drain()
    with pytest.raises(StanzaError) as not_yours:
        svc.retract("n", BOB, "a", notify=False)
    assert conditions(not_yours) == ("forbidden", None)
    svc.retract("n", BOB, "b", notify=True)
    out = svc.drain()
    assert out.deleted_items == [("n", "b")]
    assert out.notifications[0].event.find("items", ns.PUBSUB_EVENT) is not None
    svc.purge("n", ALICE)
    assert svc.drain().purged_nodes == {"n"}
    assert svc.nodes["n"].items == {}


def test_pep_owner_audience_and_auto_create() -> None:
    account = ALICE.bare
    svc = service(owner=account, default_config=NodeConfig(access_model="presence"))
    with pytest.raises(StanzaError) as foreign:
        svc.publish("urn:xmpp:avatar:metadata", BOB, item("x"), may_create=False)
    assert conditions(foreign) == ("item-not-found", None)
    with pytest.raises(StanzaError) as not_owner:
        svc.create("n", BOB)
    assert conditions(not_owner) == ("forbidden", None)
    svc.audience = lambda node: [BOB, CAROL]
    svc.publish("urn:xmpp:avatar:metadata", ALICE, item("x"), may_create=True)
    svc.audience = None
    out = svc.drain()
    assert [n.to for n in out.notifications] == [BOB, CAROL]
    node = svc.nodes["urn:xmpp:avatar:metadata"]
    assert svc.affiliation(node, ALICE) == "owner"
    published = out.notifications[0].event.find("items", ns.PUBSUB_EVENT)
    assert published is not None
    first = published.first()
    assert first is not None
    assert "publisher" not in first.attrs  # PEP: the owner is the sender


def test_items_paging() -> None:
    svc = service()
    svc.create("n", ALICE, form(ns.PUBSUB_NODE_CONFIG, max_items="max"))
    for n in range(5):
        svc.publish("n", ALICE, item(str(n), f"i{n}"))
    _, found, info = svc.items("n", BOB, NO_RELATION, page=Page(max=2))
    assert [i.id for i in found] == ["i0", "i1"]
    assert info is not None
    assert (info.first, info.last, info.first_index, info.count) == ("i0", "i1", 0, 5)
    _, found, info = svc.items("n", BOB, NO_RELATION, page=Page(max=2, after="i3"))
    assert [i.id for i in found] == ["i4"]
    _, found, info = svc.items("n", BOB, NO_RELATION, page=Page(max=2, before=""))
    assert [i.id for i in found] == ["i3", "i4"]
    _, found, info = svc.items("n", BOB, NO_RELATION, page=Page(max=2, before="i3"))
    assert [i.id for i in found] == ["i1", "i2"]
    _, found, _ = svc.items("n", BOB, NO_RELATION, max_items=1)
    assert [i.id for i in found] == ["i4"]
    with pytest.raises(StanzaError) as unknown:
        svc.items("n", BOB, NO_RELATION, page=Page(after="gone"))
    assert conditions(unknown) == ("item-not-found", None)


def test_limits_on_nodes_and_config_values() -> None:
    svc = service(max_nodes=1, max_items=5)
    svc.create("one", ALICE)
    with pytest.raises(StanzaError) as full:
        svc.create("two", ALICE)
    assert conditions(full) == ("resource-constraint", None)
    for bad in ({"max_items": "6"}, {"persist_items": "maybe"}, {"publish_model": "anyone"}):
        with pytest.raises(StanzaError) as refused:
            svc.configure("one", ALICE, form(ns.PUBSUB_NODE_CONFIG, **bad))
        assert conditions(refused) == ("not-acceptable", None)


def test_config_form_round_trip() -> None:
    config = NodeConfig(max_items=None, access_model="roster", roster_groups_allowed=("a", "b"))
    svc = service()
    svc.create("n", ALICE)
    rendered = config_form(config, "n")
    rendered.attrs["type"] = "submit"
    svc.configure("n", ALICE, rendered)
    assert svc.nodes["n"].config == config
    assert NodeConfig.from_json(config.to_json()) == config


def disco(identities: list[dict[str, str]], features: list[str]) -> Element:
    query = Element("query", "http://jabber.org/protocol/disco#info")
    for attrs in identities:
        query.add("identity", attrs=attrs)
    for var in features:
        query.add("feature", attrs={"var": var})
    return query


SIMPLE = disco(
    [{"category": "client", "type": "pc", "name": "Exodus 0.9.1"}],
    [
        "http://jabber.org/protocol/caps",
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "http://jabber.org/protocol/muc",
    ],
)


def test_caps_hash_of_xep_0115_simple_example() -> None:
    assert ver_of(SIMPLE, "sha-1") == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_caps_hash_of_xep_0115_complex_example() -> None:
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    query = disco(
        [
            {"category": "client", "type": "pc", lang: "en", "name": "Psi 0.11"},
            {"category": "client", "type": "pc", lang: "el", "name": "Ψ 0.11"},
        ],
        [
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/muc",
        ],
    )
    x = query.add("x", ns.DATA_FORMS, {"type": "result"})
    for var, values in (
        ("FORM_TYPE", ["urn:xmpp:dataforms:softwareinfo"]),
        ("ip_version", ["ipv4", "ipv6"]),
        ("os", ["Mac"]),
        ("os_version", ["10.5.1"]),
        ("software", ["Psi"]),
        ("software_version", ["0.11"]),
    ):
        field = x.add("field", ns.DATA_FORMS, {"var": var})
        if var == "FORM_TYPE":
            field.attrs["type"] = "hidden"
        for value in values:
            field.add("value", ns.DATA_FORMS, text=value)
    assert ver_of(query, "sha-1") == "q07IKJEyjvHSyhy//CH0CxmKi8w="


def test_caps_cache_keeps_only_verified_results() -> None:
    cache = CapsCache(size=1)
    good = Caps("https://example.org", "QgayPKawpkPSDYmwT/WM94uAlu0=", "sha-1")
    lying = Caps("https://example.org", "forged=", "sha-1")
    assert cache.learn(lying, SIMPLE) is not None  # used for that client only
    assert cache.get(lying) is None
    features = cache.learn(good, SIMPLE)
    assert cache.get(good) == features
    assert features is not None
    assert "http://jabber.org/protocol/muc" in features
    doubled = disco([], ["a", "a"])
    assert cache.learn(Caps("n", "v", "sha-1"), doubled) is None
