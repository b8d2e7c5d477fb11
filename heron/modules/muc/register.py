"""Registration with a room for a reserved nick (XEP-0045 §7.10, jabber:iq:register on the
room JID), and the room's vCard (vcard-temp on the room JID, XEP-0486 avatars)."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from heron import ns
from heron.jid import JID
from heron.modules.muc.config import DATA, MUC_REGISTER, VCARD, field_values
from heron.modules.muc.room import Room
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream import serialize
from heron.xmlstream.element import Element
from heron.xmlstream.stored import parse_stored

if TYPE_CHECKING:
    from heron.modules.muc.service import MucModule

C = StanzaCondition


class Registration:
    def __init__(self, muc: MucModule) -> None:
        self.muc = muc

    async def get(self, iq: Stanza) -> Element | None:
        """The nick the asker reserved, or the form to reserve one."""
        room, _actor, affiliation = self.muc.room_for(iq)
        assert iq.from_ is not None
        query = Element("query", ns.REGISTER)
        reserved = room.registered.get(iq.from_.bare)
        if reserved is not None:
            query.add("registered", ns.REGISTER)
            query.add("username", ns.REGISTER, text=reserved)
            return query
        if affiliation == "outcast":
            raise StanzaError(StanzaCondition.FORBIDDEN, "you are banned from this room")
        query.add("instructions", ns.REGISTER, text="Choose the nickname to reserve in this room.")
        form = query.add("x", DATA, {"type": "form"})
        form.add("field", DATA, {"var": "FORM_TYPE", "type": "hidden"}).add(
            "value", DATA, text=MUC_REGISTER
        )
        nick = form.add(
            "field", DATA, {"var": "muc#register_roomnick", "type": "text-single", "label": "Nick"}
        )
        nick.add("required", DATA)
        return query

    async def set(self, iq: Stanza) -> Element | None:
        """Submit the form to reserve a nick, or ``<remove/>`` to give it up."""
        room, _actor, _affiliation = self.muc.room_for(iq)
        assert iq.from_ is not None
        payload = iq.payload
        assert payload is not None
        if payload.find("remove", ns.REGISTER) is not None:  # give the nick (and membership) up
            release_nick(room, iq.from_)
            await self.muc.save(room)
            return None
        may_register(room, iq.from_)
        form = payload.find("x", DATA)
        if form is None or form.attrs.get("type") != "submit":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "submit the registration form")
        nick = field_values(form).get("muc#register_roomnick", "").strip()
        out = reserve_nick(room, iq.from_, nick)
        await self.muc.save(room)
        await self.muc.send(out)
        return None

    async def vcard_get(self, iq: Stanza) -> Element | None:
        room, _actor, _affiliation = self.muc.room_for(iq)
        stored = parse_stored(room.vcard, ("vCard", VCARD)) if room.vcard else None
        return stored if stored is not None else Element("vCard", VCARD)

    async def vcard_set(self, iq: Stanza) -> Element | None:
        """Owners set the room's vCard; occupants hear of it with 104 (XEP-0486)."""
        room = self.muc.owner.room_of(iq)
        payload = iq.payload
        assert payload is not None
        xml = serialize(payload, ns.CLIENT) if payload.children else ""
        if len(xml) > self.muc.options.max_vcard_bytes:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "the vCard is too large")
        room.vcard = xml
        await self.muc.save(room)
        await self.muc.send(room.notice(("104",)))
        return None


def avatar_hashes(vcard: str) -> list[str]:
    """XEP-0486: the SHA-1 of every PHOTO's decoded BINVAL, as XEP-0153 computes it."""
    card = parse_stored(vcard, ("vCard", VCARD)) if vcard else None
    hashes = []
    for photo in card.find_all("PHOTO", VCARD) if card is not None else ():
        binval = photo.child_text("BINVAL", VCARD)
        if binval:
            try:
                data = base64.b64decode("".join(binval.split()), validate=True)
            except ValueError:
                continue
            hashes.append(hashlib.sha1(data).hexdigest())  # noqa: S324 (XEP-0153's hash)
    return hashes


# --- the rules, on the room alone (sans-IO) ------------------------------------------
def may_register(room: Room, account: JID) -> str:
    """Refuse outcasts, and non-members of a members-only room; the affiliation."""
    affiliation = room.affiliation(account)
    if affiliation == "outcast":
        raise StanzaError(C.FORBIDDEN, "you are banned from this room")
    if room.config.members_only and affiliation == "none":
        raise StanzaError(C.REGISTRATION_REQUIRED, "ask an admin to add you")
    return affiliation


def reserve_nick(room: Room, sender: JID, nick: str) -> list[Element]:
    """§7.10: ``sender``'s account registers ``nick``, and becomes a member if it was
    none."""
    account = sender.bare
    affiliation = may_register(room, account)
    if not nick or len(nick) > 256:
        raise StanzaError(C.NOT_ACCEPTABLE, "a nickname is required")
    room.check_nick(nick, sender)
    room.registered[account] = nick
    out: list[Element] = []
    if affiliation == "none":
        room.affiliations[account] = "member"
        for occupant in [o for o in room.occupants.values() if o.jid.bare == account]:
            occupant.affiliation = "member"
            if occupant.role == "visitor":
                occupant.role = "participant"
            out += room.broadcast(occupant)
    return out


def release_nick(room: Room, account: JID) -> None:
    """§7.10: give the reserved nick up, and the membership it brought."""
    account = account.bare
    if account not in room.registered:
        raise StanzaError(C.ITEM_NOT_FOUND, "not registered")
    del room.registered[account]
    if room.affiliation(account) == "member":
        room.affiliations.pop(account, None)
