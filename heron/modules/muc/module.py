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

The room model and its forms are in model.py; this module routes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from heron import ns
from heron.config import ConfigError, build_options
from heron.core.module import Module, Xep
from heron.core.registry import Target
from heron.jid import JID
from heron.modules.muc.model import (
    AFFILIATIONS,
    DATA,
    MIGRATIONS,
    MUC,
    MUC_ADMIN,
    MUC_OWNER,
    MUC_REGISTER,
    MUC_REQUEST,
    MUC_USER,
    RANK,
    ROLES,
    ROOMINFO,
    Occupant,
    Room,
    RoomConfig,
    apply_form,
    config_form,
    field_values,
    load_rooms,
    room_row,
)
from heron.ratelimit import TokenBucket
from heron.stanza import ErrorType, Stanza, StanzaCondition, StanzaError
from heron.storage.sqlite import transaction
from heron.timestamps import parse as _parse_time
from heron.timestamps import stamp as _stamp
from heron.xmlstream import prepare, serialize
from heron.xmlstream.element import Element
from heron.xmlstream.stored import parse_stored

MAM: Final = "urn:xmpp:mam:2"
SID: Final = "urn:xmpp:sid:0"
OCCUPANT_ID: Final = "urn:xmpp:occupant-id:0"
MODERATE: Final = "urn:xmpp:message-moderate:1"
RETRACT: Final = "urn:xmpp:message-retract:1"
FALLBACK: Final = "urn:xmpp:fallback:0"
REGISTER: Final = "jabber:iq:register"
VCARD: Final = "vcard-temp"
SELF_PING: Final = "http://jabber.org/protocol/muc#self-ping-optimization"
ROOMUSER_NODE: Final = "x-roomuser-item"
SEARCH: Final = "urn:xmpp:channel-search:0:search"
SEARCH_PARAMS: Final = "urn:xmpp:channel-search:0:search-params"
SEARCH_ERRORS: Final = "urn:xmpp:channel-search:0:error"
ANONYMITY: Final = "urn:xmpp:channel-search:0:anonymity"
ORDER_NUSERS: Final = "{urn:xmpp:channel-search:0:order}nusers"
ORDER_ADDRESS: Final = "{urn:xmpp:channel-search:0:order}address"
RSM: Final = "http://jabber.org/protocol/rsm"


@dataclass(frozen=True, slots=True)
class MucOptions:
    service: str = ""  # default: conference.<host>
    history_length: int = 20  # the most a room keeps for joiners (and its default)
    max_occupants: int = 200
    max_rooms: int = 10000
    max_rooms_per_user: int = 100  # rooms one account may own; service admins unlimited
    messages_per_s: float = 5.0  # per occupant, to the room; beyond: resource-constraint
    messages_burst: int = 50
    max_vcard_bytes: int = 256 * 1024
    lock_new_rooms: bool = True  # §10.1.1: nobody else enters before the owner configures
    lock_timeout_s: float = 300.0  # a room still locked then is destroyed


def _status(x: Element, codes: Iterable[str]) -> None:
    for code in codes:
        x.add("status", MUC_USER, {"code": code})


class MucModule(Module):
    name = "muc"
    description = "Group chat rooms (XEP-0045) with archive, moderation and reserved nicks"
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
        Xep(410, "1.1", "complete", "self-ping answered by the room"),
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

    async def start(self) -> None:
        path = f'hosts."{self.ctx.domain}".modules.muc'
        self.options = build_options(MucOptions, self.ctx.options, path)
        o = self.options
        if o.history_length < 0 or o.max_occupants < 1 or o.max_rooms_per_user < 1:
            raise ConfigError(f"{path}: history_length ≥ 0, max_occupants and rooms ≥ 1")
        if o.lock_timeout_s <= 0:
            raise ConfigError(f"{path}.lock_timeout_s: must be > 0")
        if o.messages_per_s <= 0 or o.messages_burst < 1:
            raise ConfigError(f"{path}: messages_per_s > 0 and messages_burst ≥ 1")
        self.domain = o.service or f"conference.{self.ctx.domain}"
        self.rooms: dict[JID, Room] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.db = self.ctx.sqlite()
        await self.db.migrate(MIGRATIONS)
        self.secret = self.ctx.secret("muc occupant-id")  # stable ids
        for room in await self.db.run(load_rooms):
            self.rooms[room.jid] = room
        registry = self.ctx.add_service(self.domain)
        registry.add_hook("presence/full", self.on_presence)
        registry.add_hook("presence/bare", self.on_presence)
        registry.add_hook("message/bare", self.on_room_message)
        registry.add_hook("message/full", self.on_private_message)
        registry.add_iq_handler("get", ns.DISCO_INFO, Target.HOST, self.service_info)
        registry.add_iq_handler("get", ns.DISCO_ITEMS, Target.HOST, self.service_items)
        registry.add_iq_handler("get", ns.DISCO_INFO, Target.BARE, self.room_info)
        registry.add_iq_handler("get", ns.DISCO_ITEMS, Target.BARE, self.room_items)
        registry.add_iq_handler("set", MUC_ADMIN, Target.BARE, self.admin_set)
        registry.add_iq_handler("get", MUC_ADMIN, Target.BARE, self.admin_get)
        registry.add_iq_handler("get", MUC_OWNER, Target.BARE, self.owner_get)
        registry.add_iq_handler("set", MUC_OWNER, Target.BARE, self.owner_set)
        registry.add_iq_handler("set", MAM, Target.BARE, self.archive_query)
        registry.add_iq_handler("set", MODERATE, Target.BARE, self.moderate)
        registry.add_iq_handler("get", REGISTER, Target.BARE, self.register_get)
        registry.add_iq_handler("set", REGISTER, Target.BARE, self.register_set)
        registry.add_iq_handler("get", VCARD, Target.BARE, self.vcard_get)
        registry.add_iq_handler("set", VCARD, Target.BARE, self.vcard_set)
        registry.add_iq_handler("get", SEARCH, Target.HOST, self.search)
        registry.add_hook("iq/full", self.self_ping)
        self.ctx.registry.add_feature(MUC)  # the host points clients at its service
        self.ctx.add_item(self.domain, "Group chat")  # found in the host's disco#items
        self.ctx.add_gauge(self._gauge_name, "Group chat rooms and occupants", self._gauge)

    async def stop(self) -> None:
        """§15.6 code 332: occupants learn the service is going away."""
        for room in list(self.rooms.values()):
            self._unlock(room)
            for occupant in list(room.occupants.values()):
                await self._send(self._unavailable(room, occupant, occupant, ("332", "110")))
        self.ctx.registry.remove_feature(MUC)

    _gauge_name = "heron_muc"

    def _gauge(self) -> list[tuple[dict[str, str], float]]:
        occupants = sum(len(r.occupants) for r in self.rooms.values())
        service = {"service": self.domain}
        return [
            ({**service, "what": "rooms"}, float(len(self.rooms))),
            ({**service, "what": "occupants"}, float(occupants)),
        ]

    # --- sending ----------------------------------------------------------------------
    async def _send(self, element: Element) -> None:
        await self.ctx.send(element)

    def _item(self, room: Room, occupant: Occupant, to: Occupant | None) -> Element:
        x = Element("x", MUC_USER)
        item = x.add("item", MUC_USER, {"affiliation": occupant.affiliation, "role": occupant.role})
        if to is None or to.role == "moderator" or room.config.whois == "anyone":
            item.attrs["jid"] = str(occupant.jid)  # semi-anonymous: moderators see real JIDs
        return x

    def _presence_of(
        self, room: Room, occupant: Occupant, to: Occupant, codes: tuple[str, ...] = ()
    ) -> Element:
        el = occupant.presence.shallow_copy()
        el.children = [
            c
            for c in el.children
            if not (isinstance(c, Element) and c.ns in (MUC, MUC_USER, OCCUPANT_ID))
        ]
        el.attrs = {k: v for k, v in el.attrs.items() if k not in ("to", "from", "id")}
        el.attrs["from"] = f"{room.jid}/{occupant.nick}"
        el.attrs["to"] = str(to.jid)
        el.add("occupant-id", OCCUPANT_ID, {"id": self._occupant_id(room, occupant)})
        x = self._item(room, occupant, to)
        _status(x, codes)
        el.append(x)
        return el

    def _unavailable(
        self, room: Room, occupant: Occupant, to: Occupant, codes: tuple[str, ...], reason: str = ""
    ) -> Element:
        el = self._presence_of(room, occupant, to, codes)
        el.attrs["type"] = "unavailable"
        if reason:
            x = el.find("x", MUC_USER)
            item = x.find("item", MUC_USER) if x is not None else None
            if item is not None:
                item.add("reason", MUC_USER, text=reason)
        return el

    def _occupant_id(self, room: Room, occupant: Occupant) -> str:
        """XEP-0421: stable per room and real account, revealing neither."""
        digest = hmac.new(self.secret, f"{room.jid}\0{occupant.jid.bare}".encode(), "sha256")
        return base64.urlsafe_b64encode(digest.digest()[:18]).decode()

    async def _notice(self, room: Room, codes: tuple[str, ...]) -> None:
        """§10.2.1: a message from the room itself carrying status codes (104, 170...)."""
        for occupant in list(room.occupants.values()):
            message = Element(
                "message",
                ns.CLIENT,
                {"from": str(room.jid), "to": str(occupant.jid), "type": "groupchat"},
            )
            _status(message.add("x", MUC_USER), codes)
            await self._send(message)

    async def _fan_out(self, room: Room, message: Element) -> None:
        """One copy per occupant, sharing everything but ``to``: the shared part is
        serialized once (prepare), each delivery writes only its own start tag."""
        prepare(message, ns.CLIENT)
        for occupant in list(room.occupants.values()):
            copy = message.shallow_copy()
            copy.attrs["to"] = str(occupant.jid)
            await self._send(copy)

    # --- presence: join, update, nick change, leave -------------------------------------
    async def on_presence(self, stanza: Stanza) -> bool:
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None:
            return False  # presence to the service itself: nothing to do
        room = self.rooms.get(to.bare)
        nick = to.resource
        if stanza.type == "unavailable":
            if room is not None and sender in room.nicks:
                await self._leave(room, room.nicks[sender], stanza.element)
            return True
        if stanza.type != "available":
            return True  # subscriptions and probes are not for rooms
        if not nick:
            raise StanzaError(StanzaCondition.JID_MALFORMED, "join with room@service/nick")
        if room is not None and sender in room.nicks:
            current = room.nicks[sender]
            if current != nick:
                await self._change_nick(room, current, nick, stanza)
            else:
                occupant = room.occupants[current]
                occupant.presence = stanza.element
                await self._broadcast_presence(room, occupant)
            return True
        await self._join(to.bare, nick, sender, stanza)
        return True

    def _owned_rooms(self, account: JID) -> int:
        return sum(r.affiliations.get(account) == "owner" for r in self.rooms.values())

    def _check_nick(self, room: Room, nick: str, sender: JID) -> None:
        """§7.2.9: a nick in use by someone else, or reserved by someone else, is taken."""
        existing = room.occupants.get(nick)
        holder = room.owner_of_nick(nick)
        if (existing is not None and existing.jid.bare != sender.bare) or (
            holder is not None and holder != sender.bare
        ):
            raise StanzaError(StanzaCondition.CONFLICT, "that nickname is taken")

    async def _join(self, room_jid: JID, nick: str, sender: JID, stanza: Stanza) -> None:
        room = self.rooms.get(room_jid)
        created = room is None
        if room is None:
            if len(self.rooms) >= self.options.max_rooms:
                raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, "too many rooms")
            if self._owned_rooms(sender.bare) >= self.options.max_rooms_per_user:
                raise StanzaError(StanzaCondition.NOT_ALLOWED, "you own too many rooms already")
            room = Room(room_jid, config=RoomConfig(history_length=self.options.history_length))
            room.affiliations[sender.bare] = "owner"
        affiliation = room.affiliation(sender)
        if room.locked and affiliation != "owner":  # §10.1.1: locked until configured
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "the room is not configured yet")
        config = room.config
        if affiliation == "outcast":
            raise StanzaError(StanzaCondition.FORBIDDEN, "you are banned from this room")  # §7.2.7
        if config.members_only and affiliation == "none":
            raise StanzaError(StanzaCondition.REGISTRATION_REQUIRED, "members only")  # §7.2.6
        if config.password and affiliation not in ("owner", "admin"):
            request = stanza.element.find("x", MUC)
            given = request.child_text("password", MUC) if request is not None else None
            if given != config.password:
                raise StanzaError(StanzaCondition.NOT_AUTHORIZED, "a password is required")
        self._check_nick(room, nick, sender)
        limit = min(self.options.max_occupants, config.max_users or self.options.max_occupants)
        if len(room.occupants) >= limit and affiliation not in ("owner", "admin"):
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE, "the room is full")  # §7.2.10
        if created:
            self.rooms[room_jid] = room
            if self.options.lock_new_rooms:
                room.locked = True
                room.unlock_deadline = asyncio.get_running_loop().call_later(
                    self.options.lock_timeout_s, self._never_configured, room
                )
        role = (
            "moderator"
            if affiliation in ("owner", "admin")
            else "visitor"
            if config.moderated and affiliation == "none"
            else "participant"
        )
        bucket = TokenBucket(self.options.messages_per_s, self.options.messages_burst, time.time())
        occupant = Occupant(nick, sender, affiliation, role, stanza.element, bucket)
        # §7.2.3: first everyone already there, to the newcomer ...
        for other in room.occupants.values():
            await self._send(self._presence_of(room, other, occupant))
        room.occupants[nick] = occupant
        room.nicks[sender] = nick
        # ... then the newcomer to everyone, itself last with 110 (and 201 for a new room).
        for other in list(room.occupants.values()):
            if other is not occupant:
                await self._send(self._presence_of(room, occupant, other))
        codes = ["110", "201"] if created else ["110"]
        if config.whois == "anyone":
            codes.append("100")  # §7.2.3: the room is non-anonymous
        if config.logging and self.ctx.registry.archive is not None:
            codes.append("170")  # §7.2.12: the room is logged
        await self._send(self._presence_of(room, occupant, occupant, tuple(codes)))
        await self._send_history(room, occupant, stanza.element)
        subject = Element(
            "message",
            ns.CLIENT,
            {"from": f"{room.jid}/{room.subject_by}" if room.subject_by else str(room.jid)},
        )
        subject.attrs.update(to=str(sender), type="groupchat")
        subject.add("subject", ns.CLIENT, text=room.subject)  # §7.2.15: always, even empty
        await self._send(subject)

    async def _send_history(self, room: Room, occupant: Occupant, join: Element) -> None:
        """§7.2.14: the recent messages, limited as the joining client asked."""
        wanted = list(room.history)[len(room.history) - room.config.history_length :]
        if not room.config.history_length:
            wanted = []
        request = join.find("x", MUC)
        history = request.find("history", MUC) if request is not None else None
        if history is not None:
            attrs = history.attrs
            if attrs.get("maxstanzas", "").isdigit():
                count = int(attrs["maxstanzas"])
                wanted = wanted[len(wanted) - count :] if count else []
            horizon: float | None = None
            if attrs.get("seconds", "").isdigit():
                horizon = time.time() - int(attrs["seconds"])
            if "since" in attrs:
                since = _parse_time(attrs["since"])
                if since is not None:
                    horizon = max(horizon or since, since)
            if horizon is not None:
                wanted = [(m, at) for m, at in wanted if at > horizon]
            if attrs.get("maxchars", "").isdigit():
                budget = int(attrs["maxchars"])
                kept: list[tuple[Element, float]] = []
                for message, at in reversed(wanted):
                    budget -= len(serialize(message, ns.CLIENT))
                    if budget < 0:
                        break
                    kept.append((message, at))
                wanted = kept[::-1]
        for message, at in wanted:
            copy = message.shallow_copy()
            copy.attrs["to"] = str(occupant.jid)
            copy.add("delay", ns.DELAY, {"from": str(room.jid), "stamp": _stamp(at)})
            await self._send(copy)

    async def _broadcast_presence(
        self, room: Room, occupant: Occupant, codes: tuple[str, ...] = ()
    ) -> None:
        for other in list(room.occupants.values()):
            own = ("110", *codes) if other is occupant else codes
            await self._send(self._presence_of(room, occupant, other, own))

    async def _change_nick(self, room: Room, old: str, new: str, stanza: Stanza) -> None:
        """§7.6: unavailable with 303 and the new nick, then available under the new one."""
        occupant = room.occupants[old]
        self._check_nick(room, new, occupant.jid)
        for other in list(room.occupants.values()):
            codes = ("303", "110") if other is occupant else ("303",)
            gone = self._unavailable(room, occupant, other, codes)
            x = gone.find("x", MUC_USER)
            item = x.find("item", MUC_USER) if x is not None else None
            assert item is not None
            item.attrs["nick"] = new
            await self._send(gone)
        del room.occupants[old]
        occupant.nick = new
        occupant.presence = stanza.element
        room.occupants[new] = occupant
        room.nicks[occupant.jid] = new
        await self._broadcast_presence(room, occupant)

    async def _leave(self, room: Room, nick: str, presence: Element) -> None:
        occupant = room.occupants.pop(nick)
        room.nicks.pop(occupant.jid, None)
        occupant.presence = presence
        occupant.role = "none"
        for other in [*room.occupants.values(), occupant]:
            codes = ("110",) if other is occupant else ()
            await self._send(self._unavailable(room, occupant, other, codes))
        self._maybe_end(room)

    def _maybe_end(self, room: Room) -> None:
        if not room.occupants and not room.config.persistent:
            self.rooms.pop(room.jid, None)  # temporary rooms end with their last occupant

    async def _remove(
        self, room: Room, occupant: Occupant, code: str, reason: str, actor: str = ""
    ) -> None:
        """Kicked (307), banned (301) or no longer a member (321, 322): everyone, the
        occupant too, sees it leave."""
        del room.occupants[occupant.nick]
        room.nicks.pop(occupant.jid, None)
        occupant.role = "none"
        for other in [*room.occupants.values(), occupant]:
            codes = (code, "110") if other is occupant else (code,)
            el = self._unavailable(room, occupant, other, codes, reason)
            if actor:
                x = el.find("x", MUC_USER)
                item = x.find("item", MUC_USER) if x is not None else None
                if item is not None:
                    item.add("actor", MUC_USER, {"nick": actor})
            await self._send(el)
        self._maybe_end(room)

    # --- messages ---------------------------------------------------------------------
    async def on_room_message(self, stanza: Stanza) -> bool:
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None:
            return False
        if stanza.type == "error":
            return True
        room = self.rooms.get(to.bare)
        if room is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such room")
        el = stanza.element
        user_x = el.find("x", MUC_USER)
        if user_x is not None and user_x.find("decline", MUC_USER) is not None:
            await self._decline(room, sender, user_x)
            return True
        nick = room.nicks.get(sender)
        if nick is None:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "join the room first")  # §7.4
        occupant = room.occupants[nick]
        if user_x is not None and user_x.find("invite", MUC_USER) is not None:
            await self._invite(room, occupant, user_x)
            return True
        form = el.find("x", DATA)
        if stanza.type != "groupchat" and form is not None:
            values = field_values(form)
            if values.get("FORM_TYPE") == MUC_REQUEST:
                await self._voice_request(room, occupant, values)
                return True
        if stanza.type != "groupchat":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "messages to a room are groupchat")
        if occupant.role == "visitor":
            raise StanzaError(StanzaCondition.FORBIDDEN, "visitors have no voice")  # §7.4
        if not occupant.bucket.try_take(time.time()):
            raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, "too many messages; slow down")
        subject = el.find("subject", ns.CLIENT)
        if subject is not None and el.find("body", ns.CLIENT) is None:
            if occupant.role != "moderator" and not room.config.change_subject:
                raise StanzaError(StanzaCondition.FORBIDDEN, "only moderators change the subject")
            room.subject, room.subject_by = subject.text, nick
            await self._save(room)
        retract = el.find("retract", RETRACT)
        if retract is not None and retract.attrs.get("id"):
            await self._self_retract(room, occupant, retract.attrs["id"])
        message = el.copy()
        message.attrs = {k: v for k, v in message.attrs.items() if k in ("id", "type")}
        message.attrs["from"] = f"{room.jid}/{nick}"
        message.children = [  # only the room stamps its own ids (XEP-0359 §5, XEP-0421 §4)
            c
            for c in message.children
            if not (isinstance(c, Element) and c.ns in (SID, OCCUPANT_ID, MODERATE))
        ]
        message.add("occupant-id", OCCUPANT_ID, {"id": self._occupant_id(room, occupant)})
        await self._publish(room, occupant.jid, message)
        return True

    async def _publish(self, room: Room, author: JID, message: Element) -> None:
        """Archive (with the room's stanza-id), keep for joiners, and send to everyone."""
        has_body = message.find("body", ns.CLIENT) is not None
        archive = self.ctx.registry.archive
        if archive is not None and room.config.logging and has_body:
            archive_id = await archive.archive(room.jid, author, message)
            message.add("stanza-id", SID, {"by": str(room.jid), "id": archive_id})
        if has_body and self.options.history_length:
            room.history.append((message, time.time()))
            while len(room.history) > self.options.history_length:
                room.history.popleft()
        await self._fan_out(room, message)

    async def on_private_message(self, stanza: Stanza) -> bool:
        """§7.5: a message to room/nick goes to that occupant, from the sender's nick."""
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None or to.resource is None:
            return False
        if stanza.type == "error":
            return True
        room = self.rooms.get(to.bare)
        target = room.occupants.get(to.resource) if room is not None else None
        nick = room.nicks.get(sender) if room is not None else None
        if room is None or target is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such occupant")
        if nick is None:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "join the room first")
        if stanza.type == "groupchat":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "a private message is not groupchat")
        role = room.occupants[nick].role
        policy = room.config.allow_pm
        if (
            policy == "none"
            or (policy == "participants" and role not in ("participant", "moderator"))
            or (policy == "moderators" and role != "moderator")
        ):
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "private messages are not allowed here")
        message = stanza.element.copy()
        message.attrs["from"] = f"{room.jid}/{nick}"
        message.attrs["to"] = str(target.jid)
        message.add("x", MUC_USER)  # XEP-0045 §7.5: marks it as a MUC private message
        await self._send(message)
        return True

    async def _invite(self, room: Room, inviter: Occupant, x: Element) -> None:
        """§7.8.2 mediated invitations: the room passes them on, from itself. In a
        members-only room only admins and owners invite, and the invitee becomes a member."""
        privileged = inviter.affiliation in ("owner", "admin") or inviter.role == "moderator"
        if (room.config.members_only or not room.config.allow_invites) and not privileged:
            raise StanzaError(StanzaCondition.FORBIDDEN, "you may not invite to this room")
        for invite in x.find_all("invite", MUC_USER):
            try:
                invitee = JID.parse(invite.attrs.get("to", ""))
            except ValueError as exc:
                raise StanzaError(StanzaCondition.JID_MALFORMED) from exc
            if room.config.members_only and room.affiliations.get(invitee.bare) is None:
                room.affiliations[invitee.bare] = "member"
                await self._save(room)
            message = Element("message", ns.CLIENT, {"from": str(room.jid), "to": str(invitee)})
            out = message.add("x", MUC_USER)
            forwarded = out.add("invite", MUC_USER, {"from": str(inviter.jid.bare)})
            reason = invite.child_text("reason", MUC_USER)
            if reason:
                forwarded.add("reason", MUC_USER, text=reason)
            if room.config.password:
                out.add("password", MUC_USER, text=room.config.password)
            await self._send(message)

    async def _decline(self, room: Room, sender: JID, x: Element) -> None:
        """§7.8.3: a declined invitation goes back to the inviter, from the room."""
        decline = x.find("decline", MUC_USER)
        assert decline is not None
        try:
            inviter = JID.parse(decline.attrs.get("to", ""))
        except ValueError as exc:
            raise StanzaError(StanzaCondition.JID_MALFORMED) from exc
        message = Element("message", ns.CLIENT, {"from": str(room.jid), "to": str(inviter)})
        out = message.add("x", MUC_USER).add("decline", MUC_USER, {"from": str(sender.bare)})
        reason = decline.child_text("reason", MUC_USER)
        if reason:
            out.add("reason", MUC_USER, text=reason)
        await self._send(message)

    async def _voice_request(self, room: Room, asker: Occupant, values: dict[str, str]) -> None:
        """§7.13 a visitor asks for voice: the form goes to every moderator. §8.6 a moderator
        returns it with muc#request_allow set: the visitor becomes a participant."""
        if asker.role == "moderator" and "muc#request_allow" in values:
            if values["muc#request_allow"] not in ("1", "true"):
                return
            target = room.occupants.get(values.get("muc#roomnick", ""))
            if target is not None and target.role == "visitor":
                target.role = "participant"
                await self._broadcast_presence(room, target)
            return
        if asker.role != "visitor" or values.get("muc#role") != "participant":
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "only visitors ask for voice")
        for moderator in [o for o in room.occupants.values() if o.role == "moderator"]:
            message = Element("message", ns.CLIENT, {"from": str(room.jid)})
            message.attrs["to"] = str(moderator.jid)
            form = message.add("x", DATA, {"type": "form"})
            form.add("title", DATA, text="Voice request")
            for var, type_, label, value in (
                ("FORM_TYPE", "hidden", "", MUC_REQUEST),
                ("muc#role", "list-single", "Requested role", "participant"),
                ("muc#jid", "jid-single", "User", str(asker.jid)),
                ("muc#roomnick", "text-single", "Nickname", asker.nick),
                ("muc#request_allow", "boolean", "Give this occupant voice?", "false"),
            ):
                fld = form.add("field", DATA, {"var": var, "type": type_})
                if label:
                    fld.attrs["label"] = label
                fld.add("value", DATA, text=value)
            await self._send(message)

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
        await self._send(reply)
        return True

    # --- archive and moderation (XEP-0313, XEP-0425) ----------------------------------
    async def archive_query(self, iq: Stanza) -> Element | None:
        """XEP-0313 §6 on a room: its occupants and members read its archive."""
        room, _actor, affiliation = self._actor(iq)
        archive = self.ctx.registry.archive
        if archive is None or not room.config.logging:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no archive for that room")
        assert iq.from_ is not None
        if iq.from_ not in room.nicks and affiliation in ("none", "outcast"):
            raise StanzaError(StanzaCondition.FORBIDDEN, "join the room to read its history")
        return await archive.answer(room.jid, iq)

    async def _self_retract(self, room: Room, author: Occupant, target_id: str) -> None:
        """XEP-0424 in a room: an occupant takes back their own message (known by its
        occupant-id); the archive keeps a tombstone, joiners no longer get it. Retracting
        someone else's message is refused (moderators use XEP-0425)."""
        archive = self.ctx.registry.archive
        original = await archive.lookup(room.jid, target_id) if archive is not None else None
        if original is None:
            original = next((m for m, _at in room.history if _stanza_id(m) == target_id), None)
        if original is None:
            return  # not ours to check (too old, or never archived): relayed as it is
        mine = self._occupant_id(room, author)
        theirs = next((c.attrs.get("id") for c in original.elements() if c.ns == OCCUPANT_ID), None)
        if theirs != mine:
            raise StanzaError(StanzaCondition.FORBIDDEN, "only the author retracts a message")
        _drop_from_history(room, target_id)
        if archive is not None:
            tombstone = Element("message", ns.CLIENT, dict(original.attrs))
            tombstone.add("occupant-id", OCCUPANT_ID, {"id": mine})
            tombstone.add("retracted", RETRACT, {"stamp": _stamp(time.time())})
            await archive.replace(room.jid, target_id, tombstone)

    async def moderate(self, iq: Stanza) -> Element | None:
        """XEP-0425: a moderator retracts a message by its stanza-id. Everyone is told, the
        archive keeps a tombstone and joiners no longer get it."""
        room, actor, _affiliation = self._actor(iq)
        payload = iq.payload
        assert payload is not None
        if actor is None or actor.role != "moderator":
            raise StanzaError(StanzaCondition.FORBIDDEN, "only moderators retract messages")
        target_id = payload.attrs.get("id", "")
        if not target_id or payload.find("retract", RETRACT) is None:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "moderate a stanza-id with <retract/>")
        reason = payload.child_text("reason", MODERATE) or ""
        archive = self.ctx.registry.archive
        original = await archive.lookup(room.jid, target_id) if archive is not None else None
        kept = [m for m, _at in room.history if _stanza_id(m) == target_id]
        if original is None and not kept:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such message in this room")
        _drop_from_history(room, target_id)
        by = f"{room.jid}/{actor.nick}"
        moderator_id = self._occupant_id(room, actor)
        if archive is not None and original is not None:
            tombstone = Element("message", ns.CLIENT, dict(original.attrs))
            for child in original.elements():
                if child.ns == OCCUPANT_ID:
                    tombstone.append(child)
            retracted = tombstone.add("retracted", RETRACT, {"stamp": _stamp(time.time())})
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
        await self._publish(room, actor.jid, notice)
        return None

    # --- moderation (muc#admin, XEP-0045 §8-§9) ---------------------------------------
    def _actor(self, iq: Stanza) -> tuple[Room, Occupant | None, str]:
        assert iq.to is not None
        assert iq.from_ is not None
        room = self.rooms.get(iq.to.bare)
        if room is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such room")
        nick = room.nicks.get(iq.from_)
        actor = room.occupants.get(nick) if nick is not None else None
        return room, actor, room.affiliation(iq.from_)

    async def admin_set(self, iq: Stanza) -> Element | None:
        room, actor, rank = self._actor(iq)
        payload = iq.payload
        assert payload is not None
        for item in payload.find_all("item", MUC_ADMIN):
            reason = item.child_text("reason", MUC_ADMIN) or ""
            if "role" in item.attrs:
                await self._set_role(
                    room, actor, item.attrs.get("nick", ""), item.attrs["role"], reason
                )
            elif "affiliation" in item.attrs:
                await self._set_affiliation(
                    room, rank, item.attrs.get("jid", ""), item.attrs["affiliation"], reason
                )
            else:
                raise StanzaError(
                    StanzaCondition.BAD_REQUEST, "an item needs a role or an affiliation"
                )
        return None

    async def admin_get(self, iq: Stanza) -> Element | None:
        """§9.5/§10.5 the list of one affiliation (admins and owners); §8.5 the occupants
        with one role (moderators)."""
        room, actor, rank = self._actor(iq)
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

    async def _set_role(
        self, room: Room, actor: Occupant | None, nick: str, role: str, reason: str
    ) -> None:
        """§8.2 kick (role none), §8.3-8.4 voice (participant/visitor), §9.6-9.7 moderator."""
        if role not in ROLES:
            raise StanzaError(StanzaCondition.BAD_REQUEST, f"no role {role!r}")
        if actor is None or actor.role != "moderator":
            raise StanzaError(StanzaCondition.FORBIDDEN, "only moderators change roles")
        target = room.occupants.get(nick)
        if target is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such occupant")
        junior = RANK[actor.affiliation] < RANK["admin"]
        if role == "moderator" and junior:
            raise StanzaError(StanzaCondition.FORBIDDEN, "only admins grant moderation")  # §9.6
        if target.role == "moderator" and target is not actor and junior:
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "only admins act on moderators")
        if RANK[target.affiliation] > RANK[actor.affiliation] or (
            target.affiliation in ("owner", "admin") and role != "moderator"
        ):
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "not over that occupant")  # §8.2
        if role == "none":
            await self._remove(room, target, "307", reason, actor.nick)
            return
        target.role = role
        await self._broadcast_presence(room, target)

    async def _set_affiliation(
        self, room: Room, rank: str, jid_text: str, affiliation: str, reason: str
    ) -> None:
        """§9.1 ban (outcast), §9.3-§9.4 membership, §10.3-§10.8 owners and admins."""
        if affiliation not in AFFILIATIONS:
            raise StanzaError(StanzaCondition.BAD_REQUEST, f"no affiliation {affiliation!r}")
        try:
            target = JID.parse(jid_text).bare
        except ValueError as exc:
            raise StanzaError(StanzaCondition.JID_MALFORMED) from exc
        if rank not in ("owner", "admin"):
            raise StanzaError(StanzaCondition.FORBIDDEN, "only admins change affiliations")
        current = room.affiliations.get(target, "none")
        if RANK[current] >= RANK[rank] and rank != "owner":
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "not over that affiliation")  # §9.1
        if affiliation in ("owner", "admin") and rank != "owner":
            raise StanzaError(StanzaCondition.FORBIDDEN, "only owners grant that")
        owners = sum(a == "owner" for a in room.affiliations.values())
        if current == "owner" and affiliation != "owner" and owners == 1:
            raise StanzaError(StanzaCondition.CONFLICT, "a room keeps at least one owner")
        if affiliation == "none":
            room.affiliations.pop(target, None)
        else:
            room.affiliations[target] = affiliation
        if affiliation in ("none", "outcast"):
            room.registered.pop(target, None)
        await self._save(room)
        for occupant in [o for o in room.occupants.values() if o.jid.bare == target]:
            occupant.affiliation = affiliation
            if affiliation == "outcast":
                await self._remove(room, occupant, "301", reason)
            elif affiliation == "none" and room.config.members_only:
                await self._remove(room, occupant, "321", reason)  # §9.4
            else:
                occupant.role = (
                    "moderator"
                    if affiliation in ("owner", "admin")
                    else "visitor"
                    if room.config.moderated and affiliation == "none"
                    else "participant"
                )
                await self._broadcast_presence(room, occupant)

    # --- configuration (muc#owner, XEP-0045 §10) -------------------------------------
    def _owner_room(self, iq: Stanza) -> Room:
        room, _actor, rank = self._actor(iq)
        if rank != "owner":
            raise StanzaError(StanzaCondition.FORBIDDEN, "only owners configure a room")
        return room

    async def owner_get(self, iq: Stanza) -> Element | None:
        query = Element("query", MUC_OWNER)
        query.append(config_form(self._owner_room(iq).config))
        return query

    async def owner_set(self, iq: Stanza) -> Element | None:
        """§10.2 submit or cancel the form; §10.9 destroy the room."""
        room = self._owner_room(iq)
        payload = iq.payload
        assert payload is not None
        destroy = payload.find("destroy", MUC_OWNER)
        if destroy is not None:
            await self._destroy(room, destroy)
            return None
        form = payload.find("x", DATA)
        if form is None:
            return None
        if form.attrs.get("type") == "cancel":
            if room.locked:  # §10.1.3: cancelling the first configuration destroys the room
                await self._destroy(room, Element("destroy", MUC_OWNER))
            return None
        if form.attrs.get("type") != "submit":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "submit or cancel the form")
        before = room.config
        room.config = after = apply_form(before, form, self.options.history_length)
        was_locked = self._unlock(room)  # an empty form makes an instant room (§10.1.2)
        await self._save(room)
        codes = ["104"]  # §10.2.1: what changed, as status codes
        if after.logging != before.logging:
            codes.append("170" if after.logging else "171")
        if after.whois != before.whois:
            codes.append("172" if after.whois == "anyone" else "173")
        if not was_locked:
            await self._notice(room, tuple(codes))
        if after.whois != before.whois:
            for occupant in list(room.occupants.values()):  # real JIDs shown or hidden
                await self._broadcast_presence(room, occupant)
        if after.members_only and not before.members_only:
            for occupant in list(room.occupants.values()):
                if occupant.affiliation == "none":
                    await self._remove(room, occupant, "322", "")  # §9.4: members only now
        self._maybe_end(room)
        return None

    @staticmethod
    def _unlock(room: Room) -> bool:
        was_locked, room.locked = room.locked, False
        if room.unlock_deadline is not None:
            room.unlock_deadline.cancel()
            room.unlock_deadline = None
        return was_locked

    def _never_configured(self, room: Room) -> None:
        if room.locked and self.rooms.get(room.jid) is room:
            reason = Element("destroy", MUC_OWNER)
            reason.add("reason", MUC_OWNER, text="the room was not configured in time")
            task = asyncio.create_task(self._destroy(room, reason))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _destroy(self, room: Room, destroy: Element) -> None:
        """§10.9: everyone leaves with the reason (and an alternate venue, if given)."""
        for occupant in list(room.occupants.values()):
            occupant.role = "none"
            el = self._unavailable(room, occupant, occupant, ())
            x = el.find("x", MUC_USER)
            assert x is not None
            x.append(destroy.renamespaced(MUC_OWNER, MUC_USER))
            await self._send(el)
        self.rooms.pop(room.jid, None)
        self._unlock(room)
        jid = str(room.jid)

        def delete(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM muc_rooms WHERE jid = ?", (jid,))

        await self.db.run(delete)

    async def _save(self, room: Room) -> None:
        """Persistent rooms keep their configuration, affiliations, nicks and subject."""
        jid = str(room.jid)
        if not room.config.persistent:

            def forget(conn: sqlite3.Connection) -> None:
                with transaction(conn):
                    conn.execute("DELETE FROM muc_rooms WHERE jid = ?", (jid,))

            await self.db.run(forget)
            return
        row = room_row(room)

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT OR REPLACE INTO muc_rooms"
                    " (jid, config, affiliations, subject, registered, vcard)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )

        await self.db.run(write)

    # --- registration (§7.10) and the room's vCard (XEP-0486) -------------------------
    async def register_get(self, iq: Stanza) -> Element | None:
        room, _actor, affiliation = self._actor(iq)
        assert iq.from_ is not None
        query = Element("query", REGISTER)
        reserved = room.registered.get(iq.from_.bare)
        if reserved is not None:
            query.add("registered", REGISTER)
            query.add("username", REGISTER, text=reserved)
            return query
        if affiliation == "outcast":
            raise StanzaError(StanzaCondition.FORBIDDEN, "you are banned from this room")
        query.add("instructions", REGISTER, text="Choose the nickname to reserve in this room.")
        form = query.add("x", DATA, {"type": "form"})
        form.add("field", DATA, {"var": "FORM_TYPE", "type": "hidden"}).add(
            "value", DATA, text=MUC_REGISTER
        )
        nick = form.add(
            "field", DATA, {"var": "muc#register_roomnick", "type": "text-single", "label": "Nick"}
        )
        nick.add("required", DATA)
        return query

    async def register_set(self, iq: Stanza) -> Element | None:
        room, _actor, affiliation = self._actor(iq)
        assert iq.from_ is not None
        account = iq.from_.bare
        payload = iq.payload
        assert payload is not None
        if payload.find("remove", REGISTER) is not None:  # give the nick (and membership) up
            if account not in room.registered:
                raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "not registered")
            del room.registered[account]
            if affiliation == "member":
                room.affiliations.pop(account, None)
            await self._save(room)
            return None
        if affiliation == "outcast":
            raise StanzaError(StanzaCondition.FORBIDDEN, "you are banned from this room")
        if room.config.members_only and affiliation == "none":
            raise StanzaError(StanzaCondition.REGISTRATION_REQUIRED, "ask an admin to add you")
        form = payload.find("x", DATA)
        if form is None or form.attrs.get("type") != "submit":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "submit the registration form")
        nick = field_values(form).get("muc#register_roomnick", "").strip()
        if not nick or len(nick) > 256:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "a nickname is required")
        self._check_nick(room, nick, iq.from_)
        room.registered[account] = nick
        if affiliation == "none":
            room.affiliations[account] = "member"
            for occupant in [o for o in room.occupants.values() if o.jid.bare == account]:
                occupant.affiliation = "member"
                if occupant.role == "visitor":
                    occupant.role = "participant"
                await self._broadcast_presence(room, occupant)
        await self._save(room)
        return None

    async def vcard_get(self, iq: Stanza) -> Element | None:
        room, _actor, _affiliation = self._actor(iq)
        stored = parse_stored(room.vcard, ("vCard", VCARD)) if room.vcard else None
        return stored if stored is not None else Element("vCard", VCARD)

    async def vcard_set(self, iq: Stanza) -> Element | None:
        room = self._owner_room(iq)
        payload = iq.payload
        assert payload is not None
        xml = serialize(payload, ns.CLIENT) if payload.children else ""
        if len(xml) > self.options.max_vcard_bytes:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "the vCard is too large")
        room.vcard = xml
        await self._save(room)
        await self._notice(room, ("104",))
        return None

    # --- XEP-0433: channel search over this service's public rooms ----------------------
    async def search(self, iq: Stanza) -> Element | None:
        payload = iq.payload
        assert payload is not None
        form = payload.find("x", DATA)
        if form is None:
            return _search_form()
        values = {
            f.attrs.get("var", ""): [v.text for v in f.find_all("value", DATA)]
            for f in form.find_all("field", DATA)
        }

        def flag(var: str, default: bool) -> bool:
            given = values.get(var)
            return default if not given else given[0] in ("1", "true")

        query = (values.get("q") or [""])[0]
        every = flag("all", False)
        if every and query:
            conflict = Element("conflicting-fields", SEARCH_ERRORS)
            for var in ("all", "q"):
                conflict.add("var", SEARCH_ERRORS, text=var)
            raise StanzaError(StanzaCondition.BAD_REQUEST, "all or q, not both", extra=conflict)
        if not every and "q" not in values:
            raise StanzaError(
                StanzaCondition.BAD_REQUEST,
                "give search terms (q) or ask for all",
                extra=Element("no-search-conditions", SEARCH_ERRORS),
            )
        terms = query.lower().split()
        if not every and not terms:
            raise StanzaError(
                StanzaCondition.BAD_REQUEST,
                "the search terms are empty",
                extra=Element("invalid-search-terms", SEARCH_ERRORS),
            )
        key = (values.get("key") or [ORDER_NUSERS])[0]
        if key not in (ORDER_NUSERS, ORDER_ADDRESS):
            raise StanzaError(
                StanzaCondition.FEATURE_NOT_IMPLEMENTED,
                "sort by {urn:xmpp:channel-search:0:order}nusers or address",
                type=ErrorType.MODIFY,
                extra=Element("invalid-sort-key", SEARCH_ERRORS),
            )
        types = values.get("types") or ["xep-0045"]
        try:
            min_users = int((values.get("min_users") or ["0"])[0] or "0")
        except ValueError:
            min_users = 0
        in_name, in_description = flag("sinname", True), flag("sindescription", True)
        in_address = flag("sinaddress", True) or flag("sinaddr", True)
        found = []
        for room in self.rooms.values():
            c = room.config
            if not c.public or room.locked or len(room.occupants) < min_users:
                continue
            if "xep-0045" not in types:
                continue
            haystack = " ".join(
                part
                for part, wanted in (
                    (c.name, in_name),
                    (c.description, in_description),
                    (str(room.jid), in_address),
                )
                if wanted
            ).lower()
            if every or all(term in haystack for term in terms):
                found.append(room)
        if key == ORDER_ADDRESS:
            found.sort(key=lambda r: str(r.jid))
        else:
            found.sort(key=lambda r: (-len(r.occupants), str(r.jid)))
        page, rsm = _search_page(found, payload.find("set", RSM))
        result = Element("result", SEARCH)
        for room in page:
            c = room.config
            item = result.add("item", SEARCH, {"address": str(room.jid)})
            item.add("name", SEARCH, text=c.name or room.jid.local or "")
            if c.description:
                item.add("description", SEARCH, text=c.description)
            item.add("nusers", SEARCH, text=str(len(room.occupants)))
            item.add("service-type", SEARCH, text="xep-0045")
            item.add("is-open", SEARCH, text="false" if c.members_only or c.password else "true")
            item.add(
                "anonymity-mode",
                SEARCH,
                text=f"{{{ANONYMITY}}}none" if c.whois == "anyone" else "muc_semianonymous",
            )
        result.append(rsm)
        return result

    # --- discovery --------------------------------------------------------------------
    async def service_info(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_INFO)
        query.add("identity", ns.DISCO_INFO, {"category": "conference", "type": "text"})
        for feature in (ns.DISCO_INFO, ns.DISCO_ITEMS, MUC, REGISTER, VCARD, OCCUPANT_ID, SEARCH):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        return query

    async def service_items(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_ITEMS)
        for room in sorted(self.rooms.values(), key=lambda r: str(r.jid)):
            if room.config.public:
                name = room.config.name or room.jid.local or ""
                query.add("item", ns.DISCO_ITEMS, {"jid": str(room.jid), "name": name})
        return query

    async def room_items(self, iq: Stanza) -> Element | None:
        """§6.5: occupants are not listed to outsiders (semi-anonymous by design)."""
        self._actor(iq)
        return Element("query", ns.DISCO_ITEMS)

    async def room_info(self, iq: Stanza) -> Element | None:
        room, _actor, _affiliation = self._actor(iq)
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
        logged = c.logging and self.ctx.registry.archive is not None
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
            REGISTER,
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
        hashes = _avatar_hashes(room.vcard)
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


def _search_form() -> Element:
    """XEP-0433 §4.2.1: every field Heron supports, with its default."""
    search = Element("search", SEARCH)
    form = search.add("x", DATA, {"type": "form"})
    for var, type_, label, value, options in (
        ("FORM_TYPE", "hidden", "", SEARCH_PARAMS, ()),
        ("q", "text-single", "Search for", "", ()),
        ("all", "boolean", "Return all rooms (ignore the search terms)", "", ()),
        ("sinname", "boolean", "Search in name", "true", ()),
        ("sindescription", "boolean", "Search in description", "true", ()),
        ("sinaddress", "boolean", "Search in address", "true", ()),
        ("min_users", "text-single", "Minimum number of users", "1", ()),
        ("types", "list-multi", "Service types", "xep-0045", ("xep-0045",)),
        ("key", "list-single", "Sort results by", ORDER_NUSERS, (ORDER_NUSERS, ORDER_ADDRESS)),
    ):
        field = form.add("field", DATA, {"var": var, "type": type_})
        if label:
            field.attrs["label"] = label
        if value:
            field.add("value", DATA, text=value)
        for option in options:
            field.add("option", DATA).add("value", DATA, text=option)
    return search


def _search_page(rooms: list[Room], rsm: Element | None) -> tuple[list[Room], Element]:
    """XEP-0059 over the sorted result; rooms' addresses are the page markers."""
    limit = 50
    after = None
    if rsm is not None:
        try:
            limit = max(0, min(int(rsm.child_text("max", RSM) or limit), 100))
        except ValueError:
            limit = 50
        after = rsm.child_text("after", RSM)
    start = 0
    if after:
        addresses = [str(r.jid) for r in rooms]
        start = addresses.index(after) + 1 if after in addresses else len(rooms)
    page = rooms[start : start + limit]
    out = Element("set", RSM)
    if page:
        out.add("first", RSM, {"index": str(start)}, text=str(page[0].jid))
        out.add("last", RSM, text=str(page[-1].jid))
    out.add("count", RSM, text=str(len(rooms)))
    return page, out


def _drop_from_history(room: Room, stanza_id: str) -> None:
    """A retracted message is no longer sent to joiners."""
    room.history = type(room.history)(
        (m, at) for m, at in room.history if _stanza_id(m) != stanza_id
    )


def _stanza_id(message: Element) -> str | None:
    for child in message.elements():
        if child.tag == "stanza-id" and child.ns == SID:
            return child.attrs.get("id")
    return None


def _avatar_hashes(vcard: str) -> list[str]:
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
