"""The values of the publish-subscribe engine (XEP-0060): nodes, items, subscriptions, what
an operation changed and whom it tells (``Outbox``), and the forms the engine writes.
Without I/O, like the engine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from heron import ns
from heron.jid import JID
from heron.modules.pubsub.config import NodeConfig
from heron.stanza import StanzaCondition, StanzaError
from heron.stanza.forms import add_field, data_form
from heron.xmlstream.element import Element

AFFILIATIONS: Final = ("owner", "publisher", "publish-only", "member", "none", "outcast")
MAY_READ: Final = frozenset({"owner", "publisher", "member"})
MAY_PUBLISH: Final = frozenset({"owner", "publisher", "publish-only"})

C = StanzaCondition


@dataclass(frozen=True, slots=True)
class Relation:
    """How a requester stands towards the node's owner, from the owner's roster."""

    subscribed: bool = False  # has a presence subscription to the owner ('from' or 'both')
    in_roster: bool = False
    groups: frozenset[str] = frozenset()


NO_RELATION: Final = Relation()


@dataclass(frozen=True, slots=True)
class Policy:
    """The service's limits, from the module options."""

    max_items: int = 256  # what "max" means, and the highest number a node may ask for
    max_payload_bytes: int = 65536
    max_nodes: int = 1000
    default_config: NodeConfig = field(default_factory=NodeConfig)


@dataclass(slots=True)
class Item:
    id: str
    payload: Element | None
    publisher: JID


@dataclass(slots=True)
class Subscription:
    jid: JID
    subid: str
    state: str = "subscribed"  # or "pending": waiting for an owner (access model authorize)
    deliver: bool = True  # the pubsub#deliver subscription option (§6.3)
    # On a collection (XEP-0060 §9, XEP-0248 §6.1): "nodes", "items" or "all" of what
    # happens below it, down to ``depth`` levels (None: all).
    type: str = "nodes"
    depth: int | None = 1


@dataclass(slots=True)
class Node:
    name: str
    config: NodeConfig
    affiliations: dict[JID, str] = field(default_factory=dict)  # bare JID → affiliation
    subscriptions: dict[JID, Subscription] = field(default_factory=dict)  # by subscriber
    items: dict[str, Item] = field(default_factory=dict)  # oldest first

    def last_item(self) -> Item | None:
        return next(reversed(self.items.values()), None)


def add_items(
    parent: Element, namespace: str, node: Node, items: list[Item], *, publisher: bool
) -> Element:
    """``<items node=…>`` under ``parent``, one ``<item/>`` each: in a result (§6.5.2) or an
    event (§7.1.2, payloads as the node's ``deliver_payloads`` says); ``publisher`` on the
    services that name it."""
    container = parent.add("items", namespace, {"node": node.name})
    payloads = parent.tag != "event" or node.config.deliver_payloads
    for item in items:
        el = container.add("item", namespace, {"id": item.id})
        if publisher:
            el.attrs["publisher"] = str(item.publisher)
        if payloads and item.payload is not None:
            el.append(item.payload)
    return container


@dataclass(frozen=True, slots=True)
class Notification:
    """One ``<message/>`` to send: ``event`` is its ``<event/>`` child."""

    to: JID
    event: Element
    type: str = "headline"
    collection: str = ""  # delivered through this collection: its SHIM header (XEP-0248 §5.3)


@dataclass(slots=True)
class Outbox:
    """What an operation changed (to store) and whom it told (to send)."""

    saved_nodes: set[str] = field(default_factory=set)
    deleted_nodes: set[str] = field(default_factory=set)
    saved_items: list[tuple[str, Item]] = field(default_factory=list)
    deleted_items: list[tuple[str, str]] = field(default_factory=list)
    purged_nodes: set[str] = field(default_factory=set)
    notifications: list[Notification] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.saved_nodes
            or self.deleted_nodes
            or self.saved_items
            or self.deleted_items
            or self.purged_nodes
        )


@dataclass(frozen=True, slots=True)
class Page:
    """An XEP-0059 request: at most ``max`` items after or before an item id; ``before``
    empty asks for the last page."""

    max: int | None = None
    after: str | None = None
    before: str | None = None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class PageInfo:
    first: str | None
    last: str | None
    first_index: int | None
    count: int


def new_id() -> str:
    return uuid.uuid4().hex


def authorization_form(node: str, sub: Subscription) -> Element:
    """§8.6: the form an owner gets to approve or deny a pending subscription."""
    form = Element("x", ns.DATA_FORMS, {"type": "form"})
    form.add("title", ns.DATA_FORMS, text="PubSub subscriber request")
    form.add("instructions", ns.DATA_FORMS, text="Allow this JID to subscribe to this node?")
    fields = (
        ("FORM_TYPE", "hidden", "", ns.PUBSUB_SUBSCRIBE_AUTHORIZATION),
        ("pubsub#subid", "hidden", "", sub.subid),
        ("pubsub#node", "text-single", "Node ID", node),
        ("pubsub#subscriber_jid", "jid-single", "Subscriber Address", str(sub.jid)),
        ("pubsub#allow", "boolean", "Allow this JID to subscribe to this pubsub node?", "false"),
    )
    for var, type_, label, value in fields:
        add_field(form, var, [value], type_=type_, label=label)
    return form


def options_form(deliver: bool = True) -> Element:
    """§6.3.2 and §6.4: the subscription options Heron honours (pubsub#deliver)."""
    form = data_form("form", ns.PUBSUB_SUBSCRIBE_OPTIONS)
    value = "1" if deliver else "0"
    add_field(form, "pubsub#deliver", [value], type_="boolean", label="Enable delivery?")
    return form


def page_window(items: list[Item], page: Page) -> tuple[list[Item], PageInfo]:
    """XEP-0059 §2: a window on ``items`` by after/before an id, or by index."""
    ids = [i.id for i in items]
    start, end = 0, len(items)
    if page.after is not None:
        if page.after not in ids:
            raise StanzaError(C.ITEM_NOT_FOUND, "no item with that id to page after")
        start = ids.index(page.after) + 1
    if page.before is not None and page.before != "":
        if page.before not in ids:
            raise StanzaError(C.ITEM_NOT_FOUND, "no item with that id to page before")
        end = ids.index(page.before)
    if page.index is not None and page.after is None and page.before is None:
        start = min(page.index, len(items))
    size = end - start if page.max is None else min(page.max, end - start)
    if page.before is not None:
        start = end - size  # paging backwards: the window just before
    else:
        end = start + size
    window = items[start:end]
    info = PageInfo(
        window[0].id if window else None,
        window[-1].id if window else None,
        start if window else None,
        len(items),
    )
    return window, info
