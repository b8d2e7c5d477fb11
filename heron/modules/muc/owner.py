"""Owners configure rooms (muc#owner, XEP-0045 §10): the configuration form, the lock of a
new room until its first configuration (§10.1.1, with a deadline), and destruction (§10.9)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from heron.jid import JID
from heron.modules.muc.config import DATA, MUC_OWNER, apply_form, config_form
from heron.modules.muc.room import Room
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from heron.modules.muc.service import MucModule


class Owner:
    def __init__(self, muc: MucModule) -> None:
        self.muc = muc
        self._deadlines: dict[JID, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[None]] = set()

    def room_of(self, iq: Stanza) -> Room:
        """The room, if the asker owns it."""
        room, _actor, rank = self.muc.room_for(iq)
        if rank != "owner":
            raise StanzaError(StanzaCondition.FORBIDDEN, "only owners configure a room")
        return room

    async def get(self, iq: Stanza) -> Element | None:
        query = Element("query", MUC_OWNER)
        query.append(config_form(self.room_of(iq).config))
        return query

    async def set(self, iq: Stanza) -> Element | None:
        """§10.2 submit or cancel the form; §10.9 destroy the room."""
        room = self.room_of(iq)
        payload = iq.payload
        assert payload is not None
        destroy = payload.find("destroy", MUC_OWNER)
        if destroy is not None:
            await self.destroy(room, destroy)
            return None
        form = payload.find("x", DATA)
        if form is None:
            return None
        if form.attrs.get("type") == "cancel":
            if room.locked:  # §10.1.3: cancelling the first configuration destroys the room
                await self.destroy(room, Element("destroy", MUC_OWNER))
            return None
        if form.attrs.get("type") != "submit":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "submit or cancel the form")
        after = apply_form(room.config, form, self.muc.options.history_length)
        self.unlock(room)  # an empty form makes an instant room (§10.1.2)
        await self.muc.apply(room, room.configure(after))
        return None

    # --- the lock of a new room ---------------------------------------------------------
    def lock(self, room: Room) -> None:
        """§10.1.1: nobody else enters until the owner configures the room, which is
        destroyed if that does not happen in time."""
        room.locked = True
        self._deadlines[room.jid] = asyncio.get_running_loop().call_later(
            self.muc.options.lock_timeout_s, self._never_configured, room
        )

    def unlock(self, room: Room) -> None:
        """Cancel the deadline (the room's ``configure`` lifts the lock itself)."""
        deadline = self._deadlines.pop(room.jid, None)
        if deadline is not None:
            deadline.cancel()

    def _never_configured(self, room: Room) -> None:
        self._deadlines.pop(room.jid, None)
        if room.locked and self.muc.rooms.get(room.jid) is room:
            reason = Element("destroy", MUC_OWNER)
            reason.add("reason", MUC_OWNER, text="the room was not configured in time")
            task = asyncio.create_task(self.destroy(room, reason))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def destroy(self, room: Room, destroy: Element) -> None:
        """§10.9: everyone leaves with the reason (and an alternate venue, if given)."""
        await self.muc.send(room.destroy(destroy))
        self.muc.drop(room)
        self.unlock(room)
        room.locked = False
        await self.muc.store.delete(room.jid)
