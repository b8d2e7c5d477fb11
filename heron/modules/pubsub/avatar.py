"""XEP-0084 User Avatar items, read and written for XEP-0398's conversion, without I/O.

A client publishes the image to ``urn:xmpp:avatar:data`` (item id: the SHA-1 of the bytes)
and then describes it in ``urn:xmpp:avatar:metadata``. XEP-0398 §3.1: the server picks the
``<info/>`` that does not point to a URL, finds the data item with that id, and checks the
hash. An empty ``<metadata/>`` means the account shows no avatar (XEP-0084 §4.5).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from heron import ns
from heron.xmlstream.element import Element


class NoAvatar(Exception):
    """The metadata names no image Heron can convert (an URL only, a bad hash, no data)."""


def chosen_info(metadata: Element) -> Element | None:
    """The ``<info/>`` to convert; None when the metadata is empty (avatar disabled).
    Raises NoAvatar when every info points to a URL."""
    infos = metadata.find_all("info", ns.AVATAR_METADATA)
    if not infos:
        return None
    for info in infos:
        if not info.attrs.get("url") and info.attrs.get("id"):
            return info
    raise NoAvatar("every <info/> points to a URL")


def decode(text: str) -> bytes:
    """Base64 as XEP-0084 §4.2 writes it (line breaks allowed); raises NoAvatar."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoAvatar("the data is not base64") from exc


def sha1(data: bytes) -> str:
    """The item id of XEP-0084 §4.2: hex SHA-1 of the image."""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def image_of(info: Element, data: Element | None) -> tuple[str, bytes]:
    """(MIME type, bytes) of the image ``info`` describes, from its data payload, hash
    checked (XEP-0398 §3.1)."""
    if data is None or data.tag != "data" or data.ns != ns.AVATAR_DATA:
        raise NoAvatar(f"no data item {info.attrs.get('id')!r}")
    image = decode(data.text)
    if sha1(image) != info.attrs.get("id", "").lower():
        raise NoAvatar("the SHA-1 of the data is not the id of the metadata")
    return info.attrs.get("type") or "image/png", image


def data_item(image: bytes) -> Element:
    """The ``<item/>`` for the data node (XEP-0084 §4.2), as a publish carries it."""
    item = Element("item", ns.PUBSUB, {"id": sha1(image)})
    item.add("data", ns.AVATAR_DATA, text=base64.b64encode(image).decode("ascii"))
    return item


def metadata_item(mime: str, image: bytes | None) -> Element:
    """The ``<item/>`` for the metadata node: one info (XEP-0398 §3.2), or empty when
    ``image`` is None (XEP-0084 §4.5)."""
    if image is None:
        item = Element("item", ns.PUBSUB, {"id": "current"})
        item.add("metadata", ns.AVATAR_METADATA)
        return item
    item = Element("item", ns.PUBSUB, {"id": sha1(image)})
    item.add("metadata", ns.AVATAR_METADATA).add(
        "info", ns.AVATAR_METADATA, {"id": sha1(image), "bytes": str(len(image)), "type": mime}
    )
    return item
