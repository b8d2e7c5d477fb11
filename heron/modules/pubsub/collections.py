"""Collection nodes (XEP-0060 §9, with XEP-0248's rules), without I/O.

A collection holds nodes, never items; a node names the one collection it belongs to in
``pubsub#collection`` (no multi-collections), so the graph is a forest: it can never be
cyclic, which is checked whenever a node is put under a collection. A subscription to a
collection hears of what happens below it: items published, retracted or purged
(subscription type ``items``), nodes created, configured or deleted (``nodes``), or both
(``all``), down to ``pubsub#subscription_depth`` levels (``all``: every level). The node in
the event stays the node where it happened; the message names the collection in a SHIM
header (XEP-0248 §5.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from heron.modules.pubsub.errors import error, unsupported
from heron.modules.pubsub.model import Node, Subscription
from heron.stanza import StanzaCondition, StanzaError
from heron.xmlstream.element import Element

C = StanzaCondition
SUBSCRIPTION_TYPES: Final = ("nodes", "items", "all")
ITEM_EVENTS: Final = frozenset({"items", "purge"})
MAX_DEPTH: Final = 64  # a forest deeper than this is refused rather than walked


def ancestors(nodes: Mapping[str, Node], node: Node) -> list[tuple[int, Node]]:
    """The collections above ``node``, nearest first, with their distance (1 = parent)."""
    found: list[tuple[int, Node]] = []
    seen = {node.name}
    parent = nodes.get(node.config.collection) if node.config.collection else None
    while parent is not None and parent.name not in seen and len(found) < MAX_DEPTH:
        found.append((len(found) + 1, parent))
        seen.add(parent.name)
        above = parent.config.collection
        parent = nodes.get(above) if above else None
    return found


def check_placement(nodes: Mapping[str, Node], name: str, parent_name: str) -> Node | None:
    """The collection ``name`` may be put under (None for no collection), or the error:
    it must exist, be a collection, and not lie below ``name`` (no cycles, XEP-0248 §4)."""
    if not parent_name:
        return None
    parent = nodes.get(parent_name)
    if parent is None:
        raise StanzaError(C.ITEM_NOT_FOUND, f"no collection {parent_name!r}")
    if parent.config.node_type != "collection":
        raise StanzaError(C.NOT_ACCEPTABLE, f"{parent_name!r} is a leaf: it holds no nodes")
    above = [n.name for _d, n in ancestors(nodes, parent)]
    if parent_name == name or name in above or len(above) >= MAX_DEPTH - 1:
        raise StanzaError(C.NOT_ACCEPTABLE, "a node cannot be inside itself")
    return parent


def refuse_items(node: Node) -> None:
    """Collections hold no items (XEP-0248 §4): publishing there is not supported."""
    if node.config.node_type == "collection":
        raise unsupported("publish", "a collection holds nodes, not items")


def wants(sub: Subscription, event: Element, depth: int) -> bool:
    """Whether a subscription to a collection ``depth`` levels up hears of ``event``."""
    first = event.first()
    kind = "items" if first is not None and first.tag in ITEM_EVENTS else "nodes"
    if sub.type not in (kind, "all"):
        return False
    return sub.depth is None or depth <= sub.depth


def parse_option(var: str, text: str) -> tuple[str, str | int | None]:
    """A collection subscription option: ("type", value) or ("depth", value)."""
    if var == "pubsub#subscription_type":
        if text not in SUBSCRIPTION_TYPES:
            raise error(C.BAD_REQUEST, "invalid-options", f"{var}: nodes, items or all")
        return "type", text
    if text == "all":
        return "depth", None
    if not text.isdigit():
        raise error(C.BAD_REQUEST, "invalid-options", f"{var}: a number or all")
    return "depth", int(text)


OPTIONS: Final = ("pubsub#subscription_type", "pubsub#subscription_depth")
