"""XEP-0045 Multi-User Chat: the service at ``conference.DOMAIN`` (option ``service``) with its
own routing tables, and every room on it.

Rooms are created on first join and stay locked (§10.1.1) until the creator submits the
configuration form, empty for an "instant room" (§10.1.2); cancelling it, or not answering
within ``lock_timeout_s``, destroys the room. Rooms are semi-anonymous and temporary until
configured otherwise. Occupants join, talk, change nick, whisper, ask for
voice and leave with the status codes of §15.6; moderators kick and grant or revoke voice,
admins and owners ban and set affiliations (muc#admin, §8-§10); owners configure rooms with
muc#roomconfig (§10.2) and destroy them. Users register with a room for a reserved nick
(§7.10). Persistent rooms keep configuration, affiliations, reserved nicks, subject and
vCard across restarts. Group messages are kept in the room's archive (XEP-0313 on the room
JID, through the mam module's ArchiveService) with the room's stanza-id; moderators retract
them (XEP-0425). Presences and messages carry an XEP-0421 occupant-id; XEP-0410 self-pings
are answered; owners give the room a vCard avatar (XEP-0486).

In a cluster each room runs on one node (``ctx.placement``, docs/cluster.md): a stanza for
a room another node runs is handed to that node before anything here looks at it, and the
owner keeps a snapshot of the room's occupants beside the registry, from which the node
that takes the room over after its owner died puts them back; occupants whose own node
died with it leave with status 333.

The rules live in the room engine (room.py); this file routes stanzas to rooms, answers
disco, and carries out what the engine returns (store, then send). Each other concern has
its file: admin.py (roles and affiliations), owner.py (configuration, lock, destroy),
archive.py (archive and moderation), register.py (reserved nicks and the room's vCard),
search.py (XEP-0433), store.py (what persistent rooms keep).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from heron import ns
from heron.config import option
from heron.core.module import Module, ModuleContext, Xep
from heron.core.registry import Target
from heron.jid import JID, InvalidJID
from heron.modules.muc.admin import Admin
from heron.modules.muc.archive import Archive
from heron.modules.muc.config import (
    DATA,
    MAM,
    MODERATE,
    MUC,
    MUC_ADMIN,
    MUC_OWNER,
    MUC_REQUEST,
    MUC_USER,
    OCCUPANT_ID,
    RETRACT,
    ROOMINFO,
    SELF_PING,
    SID,
    VCARD,
    field_values,
)
from heron.modules.muc.invites import decline, invite, voice_request
from heron.modules.muc.owner import Owner
from heron.modules.muc.register import Registration, avatar_hashes
from heron.modules.muc.room import Occupant, Outcome, Room, RoomPolicy
from heron.modules.muc.search import search
from heron.modules.muc.store import RoomStore, SqlRoomStore
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

# XEP-0410 §4: errors that say an occupant's client is gone (not merely refusing a stanza).
GONE = frozenset(
    {
        "gone",
        "item-not-found",
        "recipient-unavailable",
        "redirect",
        "remote-server-not-found",
        "remote-server-timeout",
        "service-unavailable",
    }
)
ROOMUSER_NODE = "x-roomuser-item"
# Every stanza for a room (not the service itself) goes to the room's node first.
GATED = ("presence/full", "presence/bare", "message/bare", "message/full", "iq/bare", "iq/full")
MAX_HOPS = 3
LOST = "333"  # §15.6 (registry): removed because of a technical problem (its node died)


R = TypeVar("R")


def signed(handler: Callable[[Stanza], Awaitable[R]]) -> Callable[[Stanza], Awaitable[R]]:
    """RFC 6120 §8.3.2: an error the service raises names its author in ``by``: the room
    (or the service itself), whatever the stanza was addressed to within it."""

    async def run(stanza: Stanza) -> R:
        try:
            return await handler(stanza)
        except StanzaError as err:
            if err.by is None and stanza.to is not None:
                err.by = str(stanza.to.bare)
            raise

    return run


@dataclass(frozen=True, slots=True)
class MucOptions:
    service: str = ""  # default: conference.<host>
    history_length: int = option(20, min=0)  # the most a room keeps for joiners (its default)
    max_occupants: int = option(200, min=1)
    max_rooms: int = option(10000, min=1)
    max_rooms_per_user: int = option(100, min=1)  # rooms one account may own
    messages_per_s: float = option(5.0, above=0)  # per occupant; beyond: resource-constraint
    messages_burst: int = option(50, min=1)
    max_vcard_bytes: int = option(256 * 1024, min=0)
    lock_new_rooms: bool = True  # §10.1.1: nobody else enters before the owner configures
    lock_timeout_s: float = option(300.0, above=0)  # a room still locked then is destroyed


class MucModule(Module):
    name = "muc"
    description = "Group chat rooms (XEP-0045) with archive, moderation and reserved nicks"
    stores = (SqlRoomStore,)
    disco_features = (MUC,)  # the host points clients at its service
    xeps = (
        Xep(
            45,
            "1.35",
            "complete",
            "instant and reserved rooms (locked until configured), every role and affiliation "
            "change, voice requests, registration, invitations, persistence",
        ),
        Xep(249, "1.2", "complete", "direct invitations pass between users unchanged"),
        Xep(
            421,
            "0.1",
            "complete",
            "occupant ids on room presences and messages",
            prosody="community module",
            ejabberd="no",
        ),
        Xep(410, "1.1", "complete", "self-ping answered by the room; gone occupants removed (333)"),
        Xep(424, "0.4.2", "complete", "in rooms: authors only, checked by occupant-id"),
        Xep(433, "0.1.0", "complete", "search over the service's own public rooms"),
        Xep(
            425,
            "0.3",
            "complete",
            "urn:xmpp:message-moderate:1; the archive keeps a tombstone",
            prosody="community module",
            ejabberd="older version",
        ),
        Xep(
            486,
            "0.1",
            "complete",
            "room avatars from the room's vCard, hash in muc#roominfo",
            prosody="community module",
        ),
    )

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(MucOptions)
        o = self.options
        self.domain = o.service or f"conference.{ctx.domain}"
        self.policy = RoomPolicy(
            max_occupants=o.max_occupants,
            max_history=o.history_length,
            messages_per_s=o.messages_per_s,
            messages_burst=o.messages_burst,
            secret=ctx.secret("muc occupant-id"),  # stable ids
        )
        self.rooms: dict[JID, Room] = {}
        self.store: RoomStore = ctx.store(SqlRoomStore)
        self.owner, self.archive = Owner(self), Archive(self)
        self.placement = ctx.placement
        self._dirty: set[JID] = set()  # rooms whose snapshot (or release) is due
        self._flusher: asyncio.Task[None] | None = None
        self._adopting = asyncio.Lock()

    async def start(self) -> None:
        if not self.placement.clustered:  # a cluster loads each room where it runs
            for record in await self.store.load():
                if record.jid.domain == self.domain:  # one table for every host's service
                    self.rooms[record.jid] = Room.restore(record, self.policy)
        admin, archive, registration = Admin(self), self.archive, Registration(self)
        registry = self.ctx.add_service(self.domain)
        registry.errors_by_address = True  # the router's own errors for a room name it
        if self.placement.clustered:
            self.placement.watch(self)
            for event in GATED:
                registry.add_hook(event, self.gate, 1000)
        for event, hook in (
            ("presence/full", self.on_presence),
            ("presence/bare", self.on_presence),
            ("message/bare", self.on_room_message),
            ("message/full", self.on_private_message),
            ("iq/full", self.self_ping),
        ):
            registry.add_hook(event, signed(hook))
        for type_, xmlns, target, handler in (
            ("get", ns.DISCO_INFO, Target.HOST, self.service_info),
            ("get", ns.DISCO_ITEMS, Target.HOST, self.service_items),
            ("get", ns.DISCO_INFO, Target.BARE, self.room_info),
            ("get", ns.DISCO_ITEMS, Target.BARE, self.room_items),
            ("set", MUC_ADMIN, Target.BARE, admin.set),
            ("get", MUC_ADMIN, Target.BARE, admin.get),
            ("get", MUC_OWNER, Target.BARE, self.owner.get),
            ("set", MUC_OWNER, Target.BARE, self.owner.set),
            ("set", MAM, Target.BARE, archive.query),
            ("set", MODERATE, Target.BARE, archive.moderate),
            ("get", ns.REGISTER, Target.BARE, registration.get),
            ("set", ns.REGISTER, Target.BARE, registration.set),
            ("get", VCARD, Target.BARE, registration.vcard_get),
            ("set", VCARD, Target.BARE, registration.vcard_set),
            ("get", ns.CHANNEL_SEARCH, Target.HOST, self.search),
        ):
            registry.add_iq_handler(type_, xmlns, target, signed(handler))
        self.ctx.add_item(self.domain, "Group chat")  # found in the host's disco#items
        self.ctx.add_gauge(self._gauge_name, "Group chat rooms and occupants", self._gauge)

    async def stop(self) -> None:
        """§15.6 code 332: occupants learn the service is going away. In a cluster the
        service goes on on the other nodes: each room moves to one of them with its
        occupants (this node's last snapshot; docs/cluster.md)."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        for room in list(self.rooms.values()):
            self.owner.unlock(room)
            if not self.placement.clustered:
                await self.send(room.shutdown())
                continue
            try:
                await self.placement.keep(room.jid, room.snapshot())
            except Exception as exc:  # Redis is away: the room starts afresh elsewhere
                self.ctx.log.warning("room %s: last snapshot not written: %s", room.jid, exc)
        for jid in [j for j in self._dirty if j not in self.rooms]:  # ended: none inherit it
            try:
                await self.placement.release(jid)
            except Exception as exc:
                self.ctx.log.warning("room %s: not released: %s", jid, exc)
        if self.placement.clustered:
            try:
                await self.placement.hand_off(list(self.rooms))
            except Exception as exc:  # the others take them over when this node is gone
                self.ctx.log.warning("rooms not handed off: %s", exc)

    _gauge_name = "heron_muc"

    def _gauge(self) -> list[tuple[dict[str, str], float]]:
        occupants = sum(len(r.occupants) for r in self.rooms.values())
        service = {"service": self.domain}
        return [
            ({**service, "what": "rooms"}, float(len(self.rooms))),
            ({**service, "what": "occupants"}, float(occupants)),
        ]

    # --- carrying out what a room returns ----------------------------------------------
    @property
    def logged(self) -> bool:
        """Whether an archive keeps rooms' messages (the mam module is loaded)."""
        return self.ctx.registry.archive is not None

    async def send(self, elements: Iterable[Element]) -> None:
        clustered = self.placement.clustered
        for element in elements:
            if clustered and element.tag == "presence":  # who is in a room changed
                with contextlib.suppress(InvalidJID):
                    self._mark(JID.parse(element.attrs.get("from", "")).bare)
            await self.ctx.send(element)

    def drop(self, room: Room) -> None:
        """The room ended (its last occupant left a temporary room, or it was destroyed)."""
        if self.rooms.get(room.jid) is room:
            self.rooms.pop(room.jid)
            self._mark(room.jid)

    async def apply(self, room: Room, outcome: Outcome | list[Element]) -> None:
        """Write what changed, send what the room returned, and end a temporary room that
        its last occupant left."""
        if isinstance(outcome, Outcome):
            if outcome.changed:
                await self.save(room)
            outcome = outcome.send
        await self.send(outcome)
        if room.over:
            self.drop(room)

    async def save(self, room: Room) -> None:
        """Persistent rooms keep their configuration, affiliations, nicks and subject."""
        self._mark(room.jid)
        if room.config.persistent:
            await self.store.save(room.record())
        else:
            await self.store.delete(room.jid)

    def room_for(self, iq: Stanza) -> tuple[Room, Occupant | None, str]:
        """The room an IQ is addressed to, the asker's occupant there (if joined) and the
        asker's affiliation."""
        assert iq.to is not None
        assert iq.from_ is not None
        room = self.rooms.get(iq.to.bare)
        if room is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such room")
        rank = room.affiliation(iq.from_)
        if rank != "owner" and self.ctx.is_admin(iq.from_):
            rank = "owner"  # a service administrator (the host's admins) acts as an owner
        return room, room.occupant(iq.from_), rank

    # --- presence: join, update, nick change, leave -------------------------------------
    async def on_presence(self, stanza: Stanza) -> bool:
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None:
            return False  # presence to the service itself: nothing to do
        room = self.rooms.get(to.bare)
        occupant = room.occupant(sender) if room is not None else None
        nick = to.resource
        if stanza.type == "unavailable":
            if room is not None and occupant is not None:
                await self.apply(room, room.leave(occupant, stanza.element))
            return True
        if stanza.type == "error":
            await self.gone(stanza)
            return True
        if stanza.type == "probe" and room is not None:
            await self.send([room.probe(occupant, nick or "")])
            return True
        if stanza.type != "available":
            return True  # subscriptions are not for rooms
        if not nick:
            raise StanzaError(StanzaCondition.JID_MALFORMED, "join with room@service/nick")
        if room is not None and occupant is not None:
            if occupant.nick != nick:
                await self.apply(room, room.change_nick(occupant, nick, stanza.element))
            else:
                await self.apply(room, room.update_presence(occupant, stanza.element))
            return True
        await self._join(to.bare, nick, sender, stanza)
        return True

    async def _join(self, room_jid: JID, nick: str, sender: JID, stanza: Stanza) -> None:
        room = self.rooms.get(room_jid)
        created = room is None
        if room is None:
            if len(self.rooms) >= self.options.max_rooms:
                raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, "too many rooms")
            owned = sum(r.affiliations.get(sender.bare) == "owner" for r in self.rooms.values())
            if owned >= self.options.max_rooms_per_user and not self.ctx.is_admin(sender):
                raise StanzaError(StanzaCondition.NOT_ALLOWED, "you own too many rooms already")
            room = Room.create(room_jid, sender, self.policy)
        out = room.join(
            nick, sender, stanza.element, now=time.time(), created=created, logged=self.logged
        )
        if created:
            self.rooms[room_jid] = room
            if self.options.lock_new_rooms:
                self.owner.lock(room)
        await self.send(out)

    # --- messages ---------------------------------------------------------------------
    async def _message_target(self, stanza: Stanza, *, nick: bool) -> Room | bool:
        """The room a message to room (or room/nick) is for; else what its handler answers:
        False when it is not addressed so, True when it was an error reply (handled here:
        §4 of XEP-0410). A room that does not exist is item-not-found."""
        to = stanza.to
        if to is None or stanza.from_ is None or to.local is None or (nick and not to.resource):
            return False
        if stanza.type == "error":
            await self.gone(stanza)
            return True
        room = self.rooms.get(to.bare)
        if room is None:
            raise StanzaError(
                StanzaCondition.ITEM_NOT_FOUND, f"no such {'occupant' if nick else 'room'}"
            )
        return room

    async def on_room_message(self, stanza: Stanza) -> bool:
        room = await self._message_target(stanza, nick=False)
        if isinstance(room, bool):
            return room
        sender = stanza.from_
        assert sender is not None
        el = stanza.element
        user_x = el.find("x", MUC_USER)
        if user_x is not None and user_x.find("decline", MUC_USER) is not None:
            await self.send([decline(room, sender, user_x)])
            return True
        occupant = room.occupant(sender)
        if occupant is None:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "join the room first")  # §7.4
        if user_x is not None and user_x.find("invite", MUC_USER) is not None:
            await self.apply(room, invite(room, occupant, user_x))
            return True
        form = el.find("x", DATA)
        if stanza.type != "groupchat" and form is not None:
            values = field_values(form)
            if values.get("FORM_TYPE") == MUC_REQUEST:
                await self.apply(room, voice_request(room, occupant, values))
                return True
        if stanza.type != "groupchat":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "messages to a room are groupchat")
        message, subject_changed = room.groupchat(occupant, el, time.time())
        if subject_changed:
            await self.save(room)
        retract = el.find("retract", RETRACT)
        if retract is not None and retract.attrs.get("id"):
            await self.archive.self_retract(room, occupant, retract.attrs["id"])
        await self.publish(room, occupant.jid, message)
        return True

    async def publish(self, room: Room, author: JID, message: Element) -> None:
        """Archive (with the room's stanza-id), keep for joiners, and send to everyone."""
        archive = self.ctx.registry.archive
        has_body = message.find("body", ns.CLIENT) is not None
        if archive is not None and room.config.logging and has_body:
            archive_id = await archive.archive(room.jid, author, message)
            message.add("stanza-id", SID, {"by": str(room.jid), "id": archive_id})
        await self.send(room.publish(message, time.time()))

    async def on_private_message(self, stanza: Stanza) -> bool:
        """§7.5: a message to room/nick goes to that occupant, from the sender's nick."""
        room = await self._message_target(stanza, nick=True)
        if isinstance(room, bool):
            return room
        sender, nick = stanza.from_, stanza.to.resource if stanza.to else None
        assert sender is not None
        assert nick
        await self.send([room.private(sender, nick, stanza.element)])
        return True

    async def gone(self, stanza: Stanza) -> None:
        """XEP-0410 §4: an occupant whose client answers the room's traffic with an error
        saying it is not there any more is removed; the others see status 333."""
        room = self.rooms.get(stanza.to.bare) if stanza.to is not None else None
        occupant = room.occupant(stanza.from_) if room and stanza.from_ else None
        error = stanza.element.find("error", ns.CLIENT)
        if room is None or occupant is None or error is None:
            return
        conditions = {c.tag for c in error.elements() if c.ns == ns.STANZAS_ERRORS}
        if conditions & GONE:
            removed = room.remove(occupant, "333")
            await self.apply(room, [e for e in removed if e.get("to") != str(occupant.jid)])

    async def self_ping(self, stanza: Stanza) -> bool:
        """XEP-0410: a ping to one's own occupant JID says whether one is still joined."""
        to, sender = stanza.to, stanza.from_
        payload = stanza.payload
        if to is None or sender is None or payload is None or payload.ns != ns.PING:
            return False
        if stanza.type != "get":
            return True
        room = self.rooms.get(to.bare)
        if room is None or room.nicks.get(sender) != to.resource:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "not joined as that occupant")
        reply = Element("iq", ns.CLIENT, {"type": "result", "from": str(to), "to": str(sender)})
        if stanza.id is not None:
            reply.attrs["id"] = stanza.id
        await self.send([reply])
        return True

    # --- a cluster: one node runs each room -------------------------------------------
    async def gate(self, stanza: Stanza) -> bool:
        """Before anything else: a stanza for a room another node runs goes there."""
        to = stanza.to
        if to is None or to.local is None:
            return False  # the service itself answers on every node
        room = to.bare
        owner = await self.placement.locate(room, forwarded=bool(stanza.meta.get("hops")))
        if owner is None:
            if room not in self.rooms and room not in self._dirty:
                await self._adopt([room])
            return False
        hops = stanza.meta.get("hops", 0)
        hops = hops if isinstance(hops, int) else MAX_HOPS
        if hops >= MAX_HOPS:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE, "the room is moving; retry")
        stanza.meta["hops"] = hops + 1
        self.placement.forward(owner, stanza)
        return True

    async def _adopt(self, rooms: list[JID]) -> None:
        """Take rooms over from their previous owner: the room store's record (persistent
        rooms), else the snapshot's; the occupants of the snapshot stay, but for those
        whose session is gone (their node died too)."""
        async with self._adopting:
            for jid in rooms:
                if jid in self.rooms:
                    continue
                snapshot = await self.placement.kept(jid)
                room = Room.from_snapshot(jid, snapshot, self.policy, await self.store.get(jid))
                if room is None:
                    continue
                back = room.readmit(snapshot, time.time())
                self.rooms[jid] = room
                if room.locked:
                    self.owner.lock(room)
                self._mark(jid)
                gone = await self._sweep(room)
                self.ctx.log.info(
                    "took room %s over: %d occupants stay", jid, len(back) - len(gone)
                )

    async def _sweep(self, room: Room) -> list[Occupant]:
        """Occupants of this server whose session ended unseen (its node died) leave."""
        sessions = self.ctx.sessions
        gone = [
            o
            for o in room.occupants.values()
            if self.ctx.is_local_host(o.jid.domain) and sessions.get(o.jid) is None
        ]
        out: list[Element] = []
        for occupant in gone:
            out += room.remove(occupant, LOST)
        await self.apply(room, out)
        return gone

    async def adopt_orphans(self, rooms: list[JID]) -> None:
        ours = [r for r in rooms if r.domain == self.domain]
        await self._adopt([r for r in ours if await self.placement.locate(r) is None])
        for room in list(self.rooms.values()):
            await self._sweep(room)

    async def restate(self) -> None:
        for jid in list(self.rooms):
            if await self.placement.locate(jid) is None:
                self._mark(jid)
            else:  # another node claimed it while the registry was empty: it runs there
                self.rooms.pop(jid)

    async def forget(self) -> None:
        for room in self.rooms.values():
            self.owner.unlock(room)
        self.rooms.clear()
        self._dirty.clear()

    def _mark(self, room: JID) -> None:
        """The room's snapshot is due (or its release, when it is gone)."""
        if not self.placement.clustered:
            return
        self._dirty.add(room)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the operation that marked the room finishes first
        while self._dirty:
            jid = self._dirty.pop()
            room = self.rooms.get(jid)
            try:
                if room is None:
                    await self.placement.release(jid)
                else:
                    await self.placement.keep(jid, room.snapshot())
            except Exception as exc:  # the registry is away: again, until it is back
                self.ctx.log.warning("room %s: snapshot not written: %s", jid, exc)
                self._dirty.add(jid)
                await asyncio.sleep(0.5)

    async def listed(self) -> list[Room]:
        """The rooms to list: here, and in a cluster the persistent ones running elsewhere."""
        rooms = dict(self.rooms)
        if self.placement.clustered:
            for record in await self.store.load():
                if record.jid.domain == self.domain and record.jid not in rooms:
                    rooms[record.jid] = Room.restore(record, self.policy)
        return list(rooms.values())

    # --- discovery and search ---------------------------------------------------------
    async def search(self, iq: Stanza) -> Element | None:
        assert iq.payload is not None
        return search(await self.listed(), iq.payload)

    async def service_info(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_INFO)
        query.add("identity", ns.DISCO_INFO, {"category": "conference", "type": "text"})
        for feature in (
            ns.DISCO_INFO,
            ns.DISCO_ITEMS,
            MUC,
            ns.REGISTER,
            VCARD,
            OCCUPANT_ID,
            ns.CHANNEL_SEARCH,
        ):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        return query

    async def service_items(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_ITEMS)
        for room in sorted(await self.listed(), key=lambda r: str(r.jid)):
            if room.config.public:
                name = room.config.name or room.jid.local or ""
                query.add("item", ns.DISCO_ITEMS, {"jid": str(room.jid), "name": name})
        return query

    async def room_items(self, iq: Stanza) -> Element | None:
        """§6.5: occupants are not listed to outsiders (semi-anonymous by design)."""
        self.room_for(iq)
        return Element("query", ns.DISCO_ITEMS)

    async def room_info(self, iq: Stanza) -> Element | None:
        room, _actor, _affiliation = self.room_for(iq)
        assert iq.from_ is not None
        payload = iq.payload
        node = payload.attrs.get("node") if payload is not None else None
        if node == ROOMUSER_NODE:  # §7.12: the nick the asker reserved, if any
            query = Element("query", ns.DISCO_INFO, {"node": ROOMUSER_NODE})
            reserved = room.registered.get(iq.from_.bare)
            if reserved is not None:
                query.add(
                    "identity",
                    ns.DISCO_INFO,
                    {"category": "conference", "type": "text", "name": reserved},
                )
            return query
        if node is not None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such node")
        c = room.config
        query = Element("query", ns.DISCO_INFO)
        query.add(
            "identity",
            ns.DISCO_INFO,
            {"category": "conference", "type": "text", "name": c.name or room.jid.local or ""},
        )
        logged = c.logging and self.logged
        for feature in (
            MUC,
            "muc_public" if c.public else "muc_hidden",
            "muc_membersonly" if c.members_only else "muc_open",
            "muc_nonanonymous" if c.whois == "anyone" else "muc_semianonymous",
            "muc_persistent" if c.persistent else "muc_temporary",
            "muc_moderated" if c.moderated else "muc_unmoderated",
            "muc_passwordprotected" if c.password else "muc_unsecured",
            *((MAM, SID, MODERATE) if logged else ()),
            OCCUPANT_ID,
            SELF_PING,
            ns.REGISTER,
            VCARD,
        ):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        form = query.add("x", DATA, {"type": "result"})
        info: list[tuple[str, list[str]]] = [
            ("FORM_TYPE", [ROOMINFO]),
            ("muc#roominfo_description", [c.description]),
            ("muc#roominfo_subject", [room.subject]),
            ("muc#roominfo_occupants", [str(len(room.occupants))]),
            ("muc#roominfo_subjectmod", ["1" if c.change_subject else "0"]),
            ("muc#maxhistoryfetch", [str(c.history_length)]),
        ]
        hashes = avatar_hashes(room.vcard)
        if hashes:
            info.append(("muc#roominfo_avatarhash", hashes))
        for var, values in info:
            fld = form.add("field", DATA, {"var": var})
            if var == "FORM_TYPE":
                fld.attrs["type"] = "hidden"
            elif var == "muc#roominfo_avatarhash":
                fld.attrs["type"] = "text-multi"
            for value in values:
                fld.add("value", DATA, text=value)
        return query
