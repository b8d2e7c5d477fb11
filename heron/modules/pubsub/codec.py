"""The XML of XEP-0060 requests and answers, around the engine: a ``<pubsub/>`` IQ becomes
engine calls, and their results become the answer's payload. The caller stores what changed
and sends the notifications; this file only reads and writes elements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from heron import ns
from heron.jid import JID, InvalidJID
from heron.modules.pubsub.config import config_form
from heron.modules.pubsub.engine import Page, PageInfo, PubsubService, Relation, options_form
from heron.modules.pubsub.errors import error
from heron.modules.pubsub.model import add_items
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

C = StanzaCondition

FEATURES: Final = tuple(
    f"{ns.PUBSUB}#{f}"
    for f in (
        "access-authorize",
        "access-open",
        "access-presence",
        "access-roster",
        "access-whitelist",
        "auto-create",
        "collections",
        "config-node",
        "create-and-configure",
        "create-nodes",
        "delete-items",
        "delete-nodes",
        "filtered-notifications",
        "instant-nodes",
        "item-ids",
        "last-published",
        "manage-subscriptions",
        "modify-affiliations",
        "multi-items",
        "persistent-items",
        "publish",
        "publish-options",
        "purge-nodes",
        "retract-items",
        "retrieve-affiliations",
        "retrieve-default",
        "retrieve-items",
        "retrieve-subscriptions",
        "subscribe",
        "subscription-notifications",
        "subscription-options",
    )
)

RelationOf = Callable[[PubsubService, str | None, JID], Awaitable[Relation]]
"""How a JID stands towards the owner of a node (for the presence and roster models)."""


def verb(pubsub: Element) -> Element:
    """The action element of a <pubsub/> (options, configure and RSM come with it)."""
    for child in pubsub.elements():
        if child.tag not in ("publish-options", "configure", "options", "set") or (
            child.tag == "configure" and child.ns == ns.PUBSUB_OWNER
        ):
            return child
    for child in pubsub.elements():
        if child.tag == "options":
            return child
    raise StanzaError(C.BAD_REQUEST, "the <pubsub/> element is empty")


def _asked(iq: Stanza, pubsub: Element) -> tuple[JID, Element, str | None]:
    """Who asks, the action element and the node it names."""
    action = verb(pubsub)
    return iq.sender, action, action.attrs.get("node")


async def user_request(
    svc: PubsubService,
    iq: Stanza,
    pubsub: Element,
    relation_of: RelationOf,
    may_create: bool,
) -> Element | None:
    """§5-§7: what an entity asks of the service (``may_create``: it may create nodes)."""
    sender, action, name = _asked(iq, pubsub)
    tag, type_ = action.tag, iq.type
    if type_ == "set" and tag == "create":
        if not may_create:
            raise StanzaError(C.FORBIDDEN, "only users of this server create nodes")
        node = svc.create(name, sender, _form(pubsub.find("configure", ns.PUBSUB)))
        return Element(
            "pubsub", ns.PUBSUB, children=[Element("create", ns.PUBSUB, {"node": node.name})]
        )
    if type_ == "set" and tag == "publish":
        items = action.find_all("item", ns.PUBSUB)
        if len(items) > 1:
            raise error(C.BAD_REQUEST, "invalid-payload", "publish one item at a time")
        form = _form(pubsub.find("publish-options", ns.PUBSUB))
        item = svc.publish(name, sender, items[0] if items else None, form, may_create=may_create)
        result = Element("pubsub", ns.PUBSUB)
        result.add("publish", ns.PUBSUB, {"node": name or ""}).add(
            "item", ns.PUBSUB, {"id": item.id}
        )
        return result
    if type_ == "set" and tag == "retract":
        items = action.find_all("item", ns.PUBSUB)
        if not items:
            raise error(C.BAD_REQUEST, "item-required", "retract names an item")
        notify = action.attrs.get("notify") in ("1", "true")
        for item_el in items:
            svc.retract(name, sender, item_el.attrs.get("id", ""), notify)
        return None
    if type_ == "set" and tag == "subscribe":
        jid = _jid(action.attrs.get("jid"))
        sub = svc.subscribe(name, sender, jid, await relation_of(svc, name, jid))
        form = _form(pubsub.find("options", ns.PUBSUB))
        if form is not None:  # §6.3.7: subscribe and configure at once
            svc.set_options(name, sender, jid, sub.subid, form)
        result = Element("pubsub", ns.PUBSUB)
        result.add(
            "subscription",
            ns.PUBSUB,
            {"node": name or "", "jid": str(sub.jid), "subid": sub.subid,
             "subscription": sub.state},
        )  # fmt: skip
        return result
    if type_ == "set" and tag == "unsubscribe":
        svc.unsubscribe(name, sender, _jid(action.attrs.get("jid")), action.attrs.get("subid"))
        return None
    if type_ == "get" and tag == "items":
        return await _items(svc, sender, pubsub, action, relation_of)
    if type_ == "get" and tag == "subscriptions":
        result = Element("pubsub", ns.PUBSUB)
        subs = result.add("subscriptions", ns.PUBSUB)
        for node_name, sub in svc.subscriptions_of(sender, name):
            subs.add(
                "subscription",
                ns.PUBSUB,
                {"node": node_name, "jid": str(sub.jid), "subid": sub.subid,
                 "subscription": sub.state},
            )  # fmt: skip
        return result
    if type_ == "get" and tag == "affiliations":
        result = Element("pubsub", ns.PUBSUB)
        affs = result.add("affiliations", ns.PUBSUB)
        for node_name, affiliation in svc.affiliations_of(sender, name):
            affs.add("affiliation", ns.PUBSUB, {"node": node_name, "affiliation": affiliation})
        return result
    if tag == "options":
        return _options(svc, sender, type_, action)
    if tag == "default" and type_ == "get":  # §6.4
        if name:
            svc.node(name)
        result = Element("pubsub", ns.PUBSUB)
        default = result.add("default", ns.PUBSUB, {"node": name} if name else {})
        default.append(options_form())
        return result
    raise StanzaError(C.BAD_REQUEST, f"no pubsub {type_} for <{tag}/>")


def _options(svc: PubsubService, sender: JID, type_: str, action: Element) -> Element | None:
    """§6.3: a subscription's options, read or set."""
    name = action.attrs.get("node")
    jid = _jid(action.attrs.get("jid"))
    subid = action.attrs.get("subid")
    if type_ == "set":
        form = action.find("x", ns.DATA_FORMS)
        if form is None:
            raise error(C.BAD_REQUEST, "invalid-options", "options carry a data form")
        svc.set_options(name, sender, jid, subid, form)
        return None
    result = Element("pubsub", ns.PUBSUB)
    attrs = {"node": name or "", "jid": str(jid)}
    if subid:
        attrs["subid"] = subid
    result.add("options", ns.PUBSUB, attrs).append(svc.options(name, sender, jid, subid))
    return result


async def _items(
    svc: PubsubService, sender: JID, pubsub: Element, action: Element, relation_of: RelationOf
) -> Element:
    """§6.5: all items, some by id, the newest max_items, or a page (XEP-0059)."""
    name = action.attrs.get("node")
    ids = [i.attrs.get("id", "") for i in action.find_all("item", ns.PUBSUB)]
    max_items = None
    if "max_items" in action.attrs:
        text = action.attrs["max_items"]
        if not text.isdigit() or len(text) > 9:
            raise StanzaError(C.BAD_REQUEST, "max_items is a number")
        max_items = int(text)
    page = _page(pubsub.find("set", ns.RSM))
    relation = await relation_of(svc, name, sender)
    node, items, info = svc.items(
        name, sender, relation, ids=ids or None, max_items=max_items, page=page
    )
    result = Element("pubsub", ns.PUBSUB)
    add_items(result, ns.PUBSUB, node, items, publisher=svc.owner is None)
    if info is not None:
        result.append(_page_result(info))
    return result


def owner_request(svc: PubsubService, iq: Stanza, pubsub: Element) -> Element | None:
    """§8: what a node's owner asks (configuration, deletion, purge, subscriptions and
    affiliations of the node)."""
    sender, action, name = _asked(iq, pubsub)
    tag, type_ = action.tag, iq.type
    if tag == "configure" and type_ == "get":
        result = Element("pubsub", ns.PUBSUB_OWNER)
        result.add("configure", ns.PUBSUB_OWNER, {"node": name or ""}).append(
            svc.configuration(name, sender)
        )
        return result
    if tag == "configure" and type_ == "set":
        form = action.find("x", ns.DATA_FORMS)
        if form is None:
            raise StanzaError(C.BAD_REQUEST, "configure carries a data form")
        svc.configure(name, sender, form)
        return None
    if tag == "default" and type_ == "get":
        result = Element("pubsub", ns.PUBSUB_OWNER)
        result.add("default", ns.PUBSUB_OWNER).append(config_form(svc.policy.default_config, ""))
        return result
    if tag == "delete" and type_ == "set":
        redirect = action.find("redirect", ns.PUBSUB_OWNER)
        svc.delete(name, sender, redirect.attrs.get("uri") if redirect is not None else None)
        return None
    if tag == "purge" and type_ == "set":
        svc.purge(name, sender)
        return None
    if tag == "subscriptions" and type_ == "get":
        result = Element("pubsub", ns.PUBSUB_OWNER)
        subs = result.add("subscriptions", ns.PUBSUB_OWNER, {"node": name or ""})
        for sub in svc.node_subscriptions(name, sender):
            subs.add(
                "subscription",
                ns.PUBSUB_OWNER,
                {"jid": str(sub.jid), "subscription": sub.state, "subid": sub.subid},
            )
        return result
    if tag == "subscriptions" and type_ == "set":
        svc.set_subscriptions(name, sender, _changes(action, "subscription"))
        return None
    if tag == "affiliations" and type_ == "get":
        result = Element("pubsub", ns.PUBSUB_OWNER)
        affs = result.add("affiliations", ns.PUBSUB_OWNER, {"node": name or ""})
        for jid, affiliation in svc.node_affiliations(name, sender):
            affs.add("affiliation", ns.PUBSUB_OWNER, {"jid": str(jid), "affiliation": affiliation})
        return result
    if tag == "affiliations" and type_ == "set":
        svc.set_affiliations(name, sender, _changes(action, "affiliation"))
        return None
    raise StanzaError(C.BAD_REQUEST, f"no pubsub#owner {type_} for <{tag}/>")


def notification(
    svc: PubsubService, to: JID, type_: str, event: Element, id_: str, collection: str = ""
) -> Element:
    """The ``<message/>`` that carries one event from the service (§7.1.2); one delivered
    through a collection names it in a SHIM header (XEP-0131, XEP-0248 §5.3)."""
    message = Element("message", ns.CLIENT, {"from": str(svc.jid), "to": str(to), "type": type_})
    message.attrs["id"] = id_
    message.append(event)
    if collection:
        headers = message.add("headers", ns.SHIM)
        headers.add("header", ns.SHIM, {"name": "Collection"}, text=collection)
    return message


def _changes(action: Element, tag: str) -> list[tuple[JID, str]]:
    """§8.8.2, §8.9.2: ``<subscription jid subscription/>`` or ``<affiliation jid
    affiliation/>`` children, each a JID and its new state."""
    return [
        (_jid(e.attrs.get("jid")), e.attrs.get(tag, ""))
        for e in action.find_all(tag, ns.PUBSUB_OWNER)
    ]


def _form(parent: Element | None) -> Element | None:
    return parent.find("x", ns.DATA_FORMS) if parent is not None else None


def _jid(text: str | None) -> JID:
    if not text:
        raise error(C.BAD_REQUEST, "jid-required", "a jid attribute is required")
    try:
        return JID.parse(text)
    except InvalidJID as exc:
        raise error(C.BAD_REQUEST, "invalid-jid", str(exc)) from exc


def _page(rsm: Element | None) -> Page | None:
    if rsm is None:
        return None

    def number(tag: str) -> int | None:
        text = rsm.child_text(tag, ns.RSM)
        if text is None:
            return None
        if not text.isdigit() or len(text) > 9:
            raise StanzaError(C.BAD_REQUEST, f"RSM <{tag}/> is a number")
        return int(text)

    return Page(number("max"), rsm.child_text("after", ns.RSM), rsm.child_text("before", ns.RSM),
                number("index"))  # fmt: skip


def _page_result(info: PageInfo) -> Element:
    rsm = Element("set", ns.RSM)
    if info.first is not None:
        rsm.add("first", ns.RSM, {"index": str(info.first_index)}, info.first)
        rsm.add("last", ns.RSM, text=info.last or "")
    rsm.add("count", ns.RSM, text=str(info.count))
    return rsm
