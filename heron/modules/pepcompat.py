"""Conversions between PEP and the older per-account storage, so old and new clients see
the same avatar and the same bookmarks.

- XEP-0398: an avatar published to PEP (XEP-0084 metadata + data) becomes the vCard's
  PHOTO; a vCard PHOTO a client stores is published to the two avatar nodes. (The vcard
  module adds the photo hash to presence, XEP-0153.)
- XEP-0402 §compat (formerly XEP-0411): bookmarks published to ``urn:xmpp:bookmarks:1`` are
  mirrored into the XEP-0048 ``storage:bookmarks`` private XML, and private bookmarks a
  client stores are published as XEP-0402 items (whitelist, persistent).

The module listens to the pubsub, vcard and private modules through the host registry and
writes through their document and PEP services, which do not echo changes back. Without
one of them, the matching conversion is off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from typing import Final

from heron.core.module import Module, Xep
from heron.jid import JID, InvalidJID
from heron.stanza import StanzaError
from heron.xmlstream.element import Element

log = logging.getLogger(__name__)

AVATAR_DATA: Final = "urn:xmpp:avatar:data"
AVATAR_METADATA: Final = "urn:xmpp:avatar:metadata"
VCARD: Final = "vcard-temp"
CONVERSION: Final = "urn:xmpp:pep-vcard-conversion:0"
BOOKMARKS: Final = "urn:xmpp:bookmarks:1"
LEGACY: Final = "storage:bookmarks"
LEGACY_KEY: Final = f"{{{LEGACY}}}storage"
BOOKMARK_OPTIONS: Final = {
    "pubsub#persist_items": "true",
    "pubsub#access_model": "whitelist",
    "pubsub#max_items": "max",
    "pubsub#send_last_published_item": "never",
}


class PepCompatModule(Module):
    name = "pepcompat"
    description = "Avatars and bookmarks kept the same for PEP and older clients"
    xeps = (
        Xep(398, "1.0.0", "complete", "both directions"),
        Xep(84, "1.1.4", "complete", "stored by PEP, mirrored to the vCard"),
        Xep(402, "1.2.0", "complete", "with the #compat conversion to XEP-0048"),
        Xep(48, "1.2", "complete", "through private XML storage, mirrored to XEP-0402"),
        Xep(411, "1.1.0", "complete", "as XEP-0402's #compat conversion (XEP-0411 is deprecated)"),
    )

    async def start(self) -> None:
        registry = self.ctx.registry
        registry.pep_listeners.append(self.on_pep)
        registry.document_listeners.append(self.on_document)
        registry.account_features.update((CONVERSION, f"{BOOKMARKS}#compat"))

    async def stop(self) -> None:
        registry = self.ctx.registry
        if self.on_pep in registry.pep_listeners:
            registry.pep_listeners.remove(self.on_pep)
        if self.on_document in registry.document_listeners:
            registry.document_listeners.remove(self.on_document)
        registry.account_features.difference_update((CONVERSION, f"{BOOKMARKS}#compat"))

    # --- PEP → older storage -------------------------------------------------------------
    async def on_pep(self, account: JID, node: str, item_id: str, payload: Element | None) -> None:
        try:
            if node == AVATAR_METADATA:
                await self._avatar_to_vcard(account, payload)
            elif node == BOOKMARKS:
                await self._bookmarks_to_private(account)
        except (StanzaError, ValueError, InvalidJID):
            log.warning("could not convert %s for %s", node, account, exc_info=True)

    async def _avatar_to_vcard(self, account: JID, metadata: Element | None) -> None:
        """XEP-0398 §3.1: the metadata's inline image (not an external URL) becomes PHOTO;
        empty metadata (avatar turned off) removes it."""
        vcards = self.ctx.registry.documents.get("vcard")
        pep = self.ctx.registry.pep
        if vcards is None or pep is None:
            return
        info = None
        if metadata is not None:
            info = next(
                (i for i in metadata.find_all("info", AVATAR_METADATA) if not i.get("url")), None
            )
        card = await vcards.get(account, "") or Element("vCard", VCARD)
        card.children = [
            c for c in card.children if not (isinstance(c, Element) and c.tag == "PHOTO")
        ]
        if info is not None:
            wanted = info.attrs.get("id", "")
            data = dict(await pep.items(account, AVATAR_DATA)).get(wanted)
            if data is None:
                return  # the data node has no such image (yet): nothing to convert
            image = base64.b64decode("".join(data.text.split()), validate=True)
            if hashlib.sha1(image).hexdigest() != wanted:  # noqa: S324 (XEP-0084's hash)
                log.info("avatar of %s does not match its id; not converted", account)
                return
            photo = card.add("PHOTO", VCARD)
            photo.add("TYPE", VCARD, text=info.attrs.get("type", "image/png"))
            photo.add("BINVAL", VCARD, text=base64.b64encode(image).decode())
        await vcards.put(account, "", card)

    async def _bookmarks_to_private(self, account: JID) -> None:
        """XEP-0402 §5.3: the whole PEP list, as the XEP-0048 document (its URLs kept)."""
        private = self.ctx.registry.documents.get("private")
        pep = self.ctx.registry.pep
        if private is None or pep is None:
            return
        old = await private.get(account, LEGACY_KEY)
        storage = Element("storage", LEGACY)
        if old is not None:  # bookmarked URLs have no XEP-0402 form: keep them
            storage.children = [c for c in old.elements() if c.tag == "url"]
        for room, conference in await pep.items(account, BOOKMARKS):
            legacy = storage.add("conference", LEGACY, {"jid": room})
            if conference.attrs.get("name"):
                legacy.attrs["name"] = conference.attrs["name"]
            legacy.attrs["autojoin"] = (
                "true" if conference.attrs.get("autojoin") in ("1", "true") else "false"
            )
            for tag in ("nick", "password"):
                value = conference.child_text(tag, BOOKMARKS)
                if value:
                    legacy.add(tag, LEGACY, text=value)
        await private.put(account, LEGACY_KEY, storage)

    # --- older storage → PEP -------------------------------------------------------------
    async def on_document(self, kind: str, account: JID, element: Element) -> None:
        try:
            if kind == "vcard":
                await self._vcard_to_avatar(account, element)
            elif kind == "private" and (element.ns, element.tag) == (LEGACY, "storage"):
                await self._private_to_bookmarks(account, element)
        except (StanzaError, ValueError, InvalidJID, binascii.Error):
            log.warning("could not convert the %s of %s", kind, account, exc_info=True)

    async def _vcard_to_avatar(self, account: JID, card: Element) -> None:
        """XEP-0398 §3.2: data first (id = SHA-1 of the image), then metadata."""
        pep = self.ctx.registry.pep
        photo = card.find("PHOTO", VCARD)
        binval = photo.child_text("BINVAL", VCARD) if photo is not None else None
        if pep is None or photo is None or not binval:
            return
        image = base64.b64decode("".join(binval.split()), validate=True)
        digest = hashlib.sha1(image).hexdigest()  # noqa: S324 (XEP-0084's hash)
        current = await pep.items(account, AVATAR_METADATA)
        if current and current[-1][0] == digest:
            return  # the same image is already published
        data = Element("data", AVATAR_DATA, children=[base64.b64encode(image).decode()])
        await pep.publish(account, AVATAR_DATA, digest, data, {})
        metadata = Element("metadata", AVATAR_METADATA)
        metadata.add(
            "info",
            AVATAR_METADATA,
            {
                "id": digest,
                "bytes": str(len(image)),
                "type": photo.child_text("TYPE", VCARD) or "image/png",
            },
        )
        await pep.publish(account, AVATAR_METADATA, digest, metadata, {})

    async def _private_to_bookmarks(self, account: JID, storage: Element) -> None:
        """XEP-0402 §5.3: one item per room; rooms no longer listed are retracted."""
        pep = self.ctx.registry.pep
        if pep is None:
            return
        wanted: dict[str, Element] = {}
        for legacy in storage.find_all("conference", LEGACY):
            room = str(JID.parse(legacy.attrs.get("jid", "")).bare)
            conference = Element("conference", BOOKMARKS)
            if legacy.attrs.get("name"):
                conference.attrs["name"] = legacy.attrs["name"]
            if legacy.attrs.get("autojoin") in ("1", "true"):
                conference.attrs["autojoin"] = "true"
            for tag in ("nick", "password"):
                value = legacy.child_text(tag, LEGACY)
                if value:
                    conference.add(tag, BOOKMARKS, text=value)
            wanted[room] = conference
        existing = dict(await pep.items(account, BOOKMARKS))
        for room, conference in wanted.items():
            if existing.get(room) != conference:
                await pep.publish(account, BOOKMARKS, room, conference, BOOKMARK_OPTIONS)
        for room in existing.keys() - wanted.keys():
            await pep.retract(account, BOOKMARKS, room)
