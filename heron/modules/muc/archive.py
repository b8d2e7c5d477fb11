"""A room's archive (XEP-0313 on the room JID, kept by the mam module's ArchiveService) and
retractions in it: authors take back their own messages (XEP-0424), moderators anyone's
(XEP-0425). Either way the archive keeps a tombstone and joiners no longer get it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from heron import ns
from heron.modules.muc.config import FALLBACK, MODERATE, OCCUPANT_ID, RETRACT
from heron.modules.muc.room import Occupant, Room
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.timestamps import stamp
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from heron.modules.muc.service import MucModule


class Archive:
    def __init__(self, muc: MucModule) -> None:
        self.muc = muc

    async def query(self, iq: Stanza) -> Element | None:
        """XEP-0313 §6 on a room: its occupants and members read its archive."""
        room, actor, affiliation = self.muc.room_for(iq)
        archive = self.muc.ctx.registry.archive
        if archive is None or not room.config.logging:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no archive for that room")
        if actor is None and affiliation in ("none", "outcast"):
            raise StanzaError(StanzaCondition.FORBIDDEN, "join the room to read its history")
        return await archive.answer(room.jid, iq)

    async def self_retract(self, room: Room, author: Occupant, target_id: str) -> None:
        """XEP-0424 in a room: an occupant takes back their own message (known by its
        occupant-id). Retracting someone else's message is refused (moderators use
        XEP-0425)."""
        archive = self.muc.ctx.registry.archive
        original = await archive.lookup(room.jid, target_id) if archive is not None else None
        if original is None:
            original = room.find_in_history(target_id)
        if original is None:
            return  # not ours to check (too old, or never archived): relayed as it is
        mine = room.occupant_id(author)
        theirs = next((c.attrs.get("id") for c in original.elements() if c.ns == OCCUPANT_ID), None)
        if theirs != mine:
            raise StanzaError(StanzaCondition.FORBIDDEN, "only the author retracts a message")
        room.drop_from_history(target_id)
        if archive is not None:
            tombstone = Element("message", ns.CLIENT, dict(original.attrs))
            tombstone.add("occupant-id", OCCUPANT_ID, {"id": mine})
            tombstone.add("retracted", RETRACT, {"stamp": stamp(time.time())})
            await archive.replace(room.jid, target_id, tombstone)

    async def moderate(self, iq: Stanza) -> Element | None:
        """XEP-0425: a moderator retracts a message by its stanza-id, and everyone is told."""
        room, actor, _affiliation = self.muc.room_for(iq)
        payload = iq.payload
        assert payload is not None
        if actor is None or actor.role != "moderator":
            raise StanzaError(StanzaCondition.FORBIDDEN, "only moderators retract messages")
        target_id = payload.attrs.get("id", "")
        if not target_id or payload.find("retract", RETRACT) is None:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "moderate a stanza-id with <retract/>")
        reason = payload.child_text("reason", MODERATE) or ""
        archive = self.muc.ctx.registry.archive
        original = await archive.lookup(room.jid, target_id) if archive is not None else None
        if original is None and room.find_in_history(target_id) is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such message in this room")
        room.drop_from_history(target_id)
        by = f"{room.jid}/{actor.nick}"
        moderator_id = room.occupant_id(actor)
        if archive is not None and original is not None:
            tombstone = Element("message", ns.CLIENT, dict(original.attrs))
            for child in original.elements():
                if child.ns == OCCUPANT_ID:
                    tombstone.append(child)
            retracted = tombstone.add("retracted", RETRACT, {"stamp": stamp(time.time())})
            moderated = retracted.add("moderated", MODERATE, {"by": by})
            moderated.add("occupant-id", OCCUPANT_ID, {"id": moderator_id})
            if reason:
                retracted.add("reason", RETRACT, text=reason)
            await archive.replace(room.jid, target_id, tombstone)
        notice = Element("message", ns.CLIENT, {"from": str(room.jid), "type": "groupchat"})
        notice.attrs["id"] = f"retract-{target_id}"
        retract = notice.add("retract", RETRACT, {"id": target_id})
        moderated = retract.add("moderated", MODERATE, {"by": by})
        moderated.add("occupant-id", OCCUPANT_ID, {"id": moderator_id})
        if reason:
            retract.add("reason", RETRACT, text=reason)
        notice.add("body", ns.CLIENT, text="A moderator removed a message.")
        notice.add("fallback", FALLBACK, {"for": RETRACT})
        await self.muc.publish(room, actor.jid, notice)
        return None
