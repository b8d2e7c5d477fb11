"""The XML side of XEP-0060 (pubsub/codec.py) against the engine, without a server: requests
as elements in, answers as elements out."""

from __future__ import annotations

import itertools

import pytest

from heron import ns
from heron.jid import JID
from heron.modules.pubsub import codec
from heron.modules.pubsub.engine import NO_RELATION, Policy, PubsubService, Relation
from heron.stanza import Stanza, StanzaError
from heron.xmlstream.element import Element

SERVICE = JID.parse("pubsub.example.org")
ALICE = JID.parse("alice@example.org/phone")
BOB = JID.parse("bob@example.org/laptop")


def service() -> PubsubService:
    counter = itertools.count()
    return PubsubService(SERVICE, Policy(), make_id=lambda: f"id{next(counter)}")


def request(type_: str, namespace: str, sender: JID = ALICE) -> tuple[Stanza, Element]:
    iq = Element("iq", ns.CLIENT, {"type": type_, "id": "q"})
    pubsub = iq.add("pubsub", namespace)
    return Stanza(iq, SERVICE, sender), pubsub


def child(parent: Element | None, tag: str, namespace: str) -> Element:
    assert parent is not None
    found = parent.find(tag, namespace)
    assert found is not None, f"no <{tag}/>"
    return found


async def no_relation(svc: PubsubService, node: str | None, jid: JID) -> Relation:
    return NO_RELATION


async def user(svc: PubsubService, iq: Stanza, pubsub: Element) -> Element | None:
    return await codec.user_request(svc, iq, pubsub, no_relation, may_create=True)


async def test_create_publish_and_page_through_items() -> None:
    svc = service()
    iq, pubsub = request("set", ns.PUBSUB)
    pubsub.add("create", ns.PUBSUB, {"node": "news"})
    configure = pubsub.add("configure", ns.PUBSUB).add("x", "jabber:x:data", {"type": "submit"})
    configure.add("field", "jabber:x:data", {"var": "pubsub#max_items"}).add(
        "value", "jabber:x:data", text="10"
    )
    created = await user(svc, iq, pubsub)
    assert child(created, "create", ns.PUBSUB).attrs == {"node": "news"}
    for n in range(5):
        iq, pubsub = request("set", ns.PUBSUB)
        item = pubsub.add("publish", ns.PUBSUB, {"node": "news"}).add(
            "item", ns.PUBSUB, {"id": f"i{n}"}
        )
        item.add("entry", "urn:example", text=str(n))
        published = child(await user(svc, iq, pubsub), "publish", ns.PUBSUB)
        assert child(published, "item", ns.PUBSUB).attrs["id"] == f"i{n}"

    iq, pubsub = request("get", ns.PUBSUB, BOB)
    pubsub.add("items", ns.PUBSUB, {"node": "news", "max_items": "2"})
    newest = await user(svc, iq, pubsub)
    assert newest is not None
    items = newest.find("items", ns.PUBSUB)
    assert items is not None
    assert [i.attrs["id"] for i in items.find_all("item", ns.PUBSUB)] == ["i3", "i4"]
    assert {i.attrs["publisher"] for i in items.find_all("item", ns.PUBSUB)} == {str(ALICE.bare)}

    iq, pubsub = request("get", ns.PUBSUB, BOB)
    pubsub.add("items", ns.PUBSUB, {"node": "news"})
    page = pubsub.add("set", ns.RSM)
    page.add("max", ns.RSM, text="2")
    page.add("after", ns.RSM, text="i0")
    paged = await user(svc, iq, pubsub)
    assert paged is not None
    rsm = paged.find("set", ns.RSM)
    assert rsm is not None
    assert (rsm.child_text("first", ns.RSM), rsm.child_text("last", ns.RSM)) == ("i1", "i2")
    assert rsm.child_text("count", ns.RSM) == "5"


async def test_owner_sets_and_reads_affiliations_and_subscriptions() -> None:
    svc = service()
    svc.create("news", ALICE)
    svc.subscribe("news", BOB, BOB, NO_RELATION)
    iq, pubsub = request("set", ns.PUBSUB_OWNER)
    affiliations = pubsub.add("affiliations", ns.PUBSUB_OWNER, {"node": "news"})
    affiliations.add(
        "affiliation", ns.PUBSUB_OWNER, {"jid": str(BOB.bare), "affiliation": "publisher"}
    )
    assert codec.owner_request(svc, iq, pubsub) is None
    iq, pubsub = request("set", ns.PUBSUB_OWNER)
    subscriptions = pubsub.add("subscriptions", ns.PUBSUB_OWNER, {"node": "news"})
    subscriptions.add("subscription", ns.PUBSUB_OWNER, {"jid": str(BOB), "subscription": "none"})
    assert codec.owner_request(svc, iq, pubsub) is None

    iq, pubsub = request("get", ns.PUBSUB_OWNER)
    pubsub.add("affiliations", ns.PUBSUB_OWNER, {"node": "news"})
    answer = codec.owner_request(svc, iq, pubsub)
    assert answer is not None
    listed = answer.find("affiliations", ns.PUBSUB_OWNER)
    assert listed is not None
    assert {(a.attrs["jid"], a.attrs["affiliation"]) for a in listed.elements()} == {
        (str(ALICE.bare), "owner"),
        (str(BOB.bare), "publisher"),
    }
    iq, pubsub = request("get", ns.PUBSUB_OWNER)
    pubsub.add("subscriptions", ns.PUBSUB_OWNER, {"node": "news"})
    listed = child(codec.owner_request(svc, iq, pubsub), "subscriptions", ns.PUBSUB_OWNER)
    assert list(listed.elements()) == []

    iq, pubsub = request("get", ns.PUBSUB_OWNER, BOB)  # a publisher is not an owner
    pubsub.add("affiliations", ns.PUBSUB_OWNER, {"node": "news"})
    with pytest.raises(StanzaError) as refused:
        codec.owner_request(svc, iq, pubsub)
    assert str(refused.value.condition) == "forbidden"


async def test_malformed_requests_are_bad_requests() -> None:
    svc = service()
    svc.create("news", ALICE)
    iq, pubsub = request("set", ns.PUBSUB)
    with pytest.raises(StanzaError) as empty:
        await user(svc, iq, pubsub)
    assert str(empty.value.condition) == "bad-request"

    iq, pubsub = request("set", ns.PUBSUB)
    pubsub.add("subscribe", ns.PUBSUB, {"node": "news"})
    with pytest.raises(StanzaError) as no_jid:
        await user(svc, iq, pubsub)
    extra = no_jid.value.extra
    assert (str(no_jid.value.condition), extra.tag if extra is not None else None) == (
        "bad-request",
        "jid-required",
    )
    assert extra is not None
    assert extra.ns == ns.PUBSUB_ERRORS

    iq, pubsub = request("set", ns.PUBSUB_OWNER)
    affiliations = pubsub.add("affiliations", ns.PUBSUB_OWNER, {"node": "news"})
    affiliations.add("affiliation", ns.PUBSUB_OWNER, {"jid": "@bad", "affiliation": "member"})
    with pytest.raises(StanzaError) as bad_jid:
        codec.owner_request(svc, iq, pubsub)
    assert bad_jid.value.extra is not None
    assert bad_jid.value.extra.tag == "invalid-jid"
