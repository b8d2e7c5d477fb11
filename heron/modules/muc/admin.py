"""Roles and affiliations (muc#admin, XEP-0045 §8-§10): moderators kick and give or take
voice, admins and owners ban and set affiliations, and list them. The rank rules are the
room's (room.py); this reads and writes the muc#admin items."""

from __future__ import annotations

from typing import TYPE_CHECKING

from heron.jid import JID
from heron.modules.muc.config import MUC_ADMIN
from heron.modules.muc.room import require_affiliation
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from heron.modules.muc.service import MucModule


class Admin:
    def __init__(self, muc: MucModule) -> None:
        self.muc = muc

    async def set(self, iq: Stanza) -> Element | None:
        """Each item in turn: a role by nick, or an affiliation by JID."""
        room, actor, rank = self.muc.room_for(iq)
        payload = iq.payload
        assert payload is not None
        for item in payload.find_all("item", MUC_ADMIN):
            reason = item.child_text("reason", MUC_ADMIN) or ""
            if "role" in item.attrs:
                nick, role = item.attrs.get("nick", ""), item.attrs["role"]
                await self.muc.apply(room, room.set_role(actor, nick, role, reason))
            elif "affiliation" in item.attrs:
                affiliation = item.attrs["affiliation"]
                require_affiliation(affiliation)
                try:
                    target = JID.parse(item.attrs.get("jid", ""))
                except ValueError as exc:
                    raise StanzaError(StanzaCondition.JID_MALFORMED) from exc
                outcome = room.set_affiliation(rank, target, affiliation, reason, iq.from_)
                await self.muc.apply(room, outcome)
            else:
                raise StanzaError(
                    StanzaCondition.BAD_REQUEST, "an item needs a role or an affiliation"
                )
        return None

    async def get(self, iq: Stanza) -> Element | None:
        """§9.5/§10.5 the list of one affiliation (admins and owners); §8.5 the occupants
        with one role (moderators)."""
        room, actor, rank = self.muc.room_for(iq)
        payload = iq.payload
        assert payload is not None
        items = payload.find_all("item", MUC_ADMIN)
        roles = {i.attrs["role"] for i in items if "role" in i.attrs}
        wanted = {i.attrs["affiliation"] for i in items if "affiliation" in i.attrs}
        query = Element("query", MUC_ADMIN)
        if roles:
            if actor is None or actor.role != "moderator":
                raise StanzaError(StanzaCondition.FORBIDDEN, "only moderators list roles")
            for o in room.occupants.values():
                if o.role in roles:
                    attrs = {"nick": o.nick, "role": o.role, "affiliation": o.affiliation}
                    query.add("item", MUC_ADMIN, {**attrs, "jid": str(o.jid)})
            return query
        if rank not in ("owner", "admin"):
            raise StanzaError(StanzaCondition.FORBIDDEN, "only admins list affiliations")
        for jid, affiliation in sorted(room.affiliations.items(), key=lambda kv: str(kv[0])):
            if affiliation in wanted:
                item = query.add("item", MUC_ADMIN, {"jid": str(jid), "affiliation": affiliation})
                if jid in room.registered:
                    item.attrs["nick"] = room.registered[jid]
        return query
