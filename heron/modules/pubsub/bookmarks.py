"""Bookmarks in two shapes, converted without I/O (XEP-0402 §5.3, XEP-0411 §3).

- XEP-0048 in private XML storage (XEP-0049): one ``<storage xmlns='storage:bookmarks'/>``
  holding every ``<conference jid=…/>`` (and ``<url/>`` bookmarks);
- XEP-0402 in PEP: node ``urn:xmpp:bookmarks:1``, one item per room, the room JID as item
  id and ``<conference xmlns='urn:xmpp:bookmarks:1'/>`` without ``jid`` as payload.

Children XEP-0402 does not define travel inside its ``<extensions/>`` and come out again
unwrapped; ``<url/>`` bookmarks have no XEP-0402 form and are kept on the private side.
"""

from __future__ import annotations

from typing import Final

from heron import ns
from heron.jid import JID, InvalidJID
from heron.modules.pubsub.config import NodeConfig
from heron.xmlstream.element import Element

# XEP-0402 §3 (with XEP-0223): what a client's publish-options ask for the node.
NODE_CONFIG: Final = NodeConfig(
    access_model="whitelist", max_items=None, send_last_published_item="never"
)
_KNOWN: Final = ("nick", "password")


def _autojoin(text: str | None) -> str:
    return "true" if text in ("1", "true") else "false"


def from_storage(storage: Element) -> dict[str, Element]:
    """Room JID (the item id) → XEP-0402 ``<conference/>``, from a legacy ``<storage/>``.
    Conferences without a valid JID are left out; the last of duplicates wins."""
    found: dict[str, Element] = {}
    for legacy in storage.find_all("conference", ns.BOOKMARKS_LEGACY):
        try:
            room = JID.parse(legacy.attrs.get("jid", ""))
        except InvalidJID:
            continue
        if room.resource is not None or room.local is None:
            continue
        conference = Element("conference", ns.BOOKMARKS)
        if legacy.attrs.get("name"):
            conference.attrs["name"] = legacy.attrs["name"]
        conference.attrs["autojoin"] = _autojoin(legacy.attrs.get("autojoin"))
        extensions: list[Element] = []
        for child in legacy.elements():
            if child.ns == ns.BOOKMARKS_LEGACY and child.tag in _KNOWN:
                conference.add(child.tag, ns.BOOKMARKS, text=child.text)
            else:
                extensions.append(child.copy())
        if extensions:
            wrapper = conference.add("extensions", ns.BOOKMARKS)
            for extension in extensions:
                wrapper.append(extension)
        found[str(room)] = conference
    return found


def to_storage(items: list[tuple[str, Element | None]], keep: Element | None) -> Element:
    """A legacy ``<storage/>`` from the PEP items (id, payload), oldest first; ``keep`` is
    the stored legacy element whose ``<url/>`` bookmarks survive."""
    storage = Element("storage", ns.BOOKMARKS_LEGACY)
    for room, payload in items:
        if payload is None or payload.tag != "conference" or payload.ns != ns.BOOKMARKS:
            continue
        legacy = storage.add("conference", ns.BOOKMARKS_LEGACY, {"jid": room})
        legacy.attrs["autojoin"] = _autojoin(payload.attrs.get("autojoin"))
        if payload.attrs.get("name"):
            legacy.attrs["name"] = payload.attrs["name"]
        for child in payload.elements():
            if child.ns == ns.BOOKMARKS and child.tag in _KNOWN:
                legacy.add(child.tag, ns.BOOKMARKS_LEGACY, text=child.text)
            elif child.ns == ns.BOOKMARKS and child.tag == "extensions":
                for extension in child.elements():
                    legacy.append(extension.copy())
    if keep is not None:
        for url in keep.find_all("url", ns.BOOKMARKS_LEGACY):
            storage.append(url.copy())
    return storage
