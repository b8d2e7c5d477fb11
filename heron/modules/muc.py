"""XEP-0045 Multi-User Chat, first part: the service, joining and leaving, presence with status
codes, group messages with history and subject, nick changes and private messages.

The service lives at ``conference.DOMAIN`` (option ``service``) with its own routing tables.
Rooms are created on first join, unlocked at once (an "instant room", XEP-0045 §10.1.2),
semi-anonymous (real JIDs shown to moderators only) and temporary (they end with their last
occupant) until configured otherwise. The creator is the owner (moderator); everyone else
joins as participant.
Moderators kick and grant or revoke voice; admins and owners ban and set affiliations
(muc#admin, §8-§10). Owners configure rooms with the muc#roomconfig form (§10.2: name,
description, persistent, public, members-only, moderated, password, whois, max users,
subject changes) and destroy them; persistent rooms keep configuration, affiliations and
subject across restarts. Mediated invitations are passed on (and make members of
members-only rooms). Group messages are kept in the room's archive (XEP-0313 on the room
JID, through the mam module's ArchiveService) with the room's stanza-id; occupants and
members page through it. Presences and messages carry an XEP-0421 occupant-id; XEP-0410
self-pings are answered. Not here yet: voice requests, registration with a room,
moderation of messages.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import json
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from heron import ns
from heron.config import ConfigError, build_options
from heron.core.module import Module, Xep
from heron.core.registry import HostRegistry, Target
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.storage.sqlite import Migration, transaction
from heron.xmlstream.element import Element

MUC: Final = "http://jabber.org/protocol/muc"
MUC_USER: Final = "http://jabber.org/protocol/muc#user"
MUC_ADMIN: Final = "http://jabber.org/protocol/muc#admin"
MUC_OWNER: Final = "http://jabber.org/protocol/muc#owner"
ROOMCONFIG: Final = "http://jabber.org/protocol/muc#roomconfig"
DATA: Final = "jabber:x:data"
MAM: Final = "urn:xmpp:mam:2"
SID: Final = "urn:xmpp:sid:0"
OCCUPANT_ID: Final = "urn:xmpp:occupant-id:0"
MIGRATIONS: Final = (
    Migration(
        "muc",
        1,
        """
        CREATE TABLE muc_rooms (
            jid TEXT PRIMARY KEY,
            config TEXT NOT NULL,
            affiliations TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT ''
        );
        """,
    ),
)
AFFILIATIONS: Final = ("owner", "admin", "member", "none", "outcast")
ROLES: Final = ("moderator", "participant", "visitor", "none")
RANK: Final = {"owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0}


@dataclass(frozen=True, slots=True)
class MucOptions:
    service: str = ""  # default: conference.<host>
    history_length: int = 20
    max_occupants: int = 200
    max_rooms: int = 10000


@dataclass(slots=True)
class RoomConfig:
    """The muc#roomconfig fields Heron honours (XEP-0045 §10.2, §15.5.3)."""

    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    moderated: bool = False
    password: str = ""
    whois: str = "moderators"  # or "anyone": who sees occupants' real JIDs
    max_users: int = 0  # 0: the service's limit
    change_subject: bool = False  # may participants change the subject?
    logging: bool = True  # keep messages in the room archive (XEP-0313 on the room JID)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RoomConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


FIELDS: Final = (
    ("muc#roomconfig_roomname", "text-single", "name"),
    ("muc#roomconfig_roomdesc", "text-single", "description"),
    ("muc#roomconfig_persistentroom", "boolean", "persistent"),
    ("muc#roomconfig_publicroom", "boolean", "public"),
    ("muc#roomconfig_membersonly", "boolean", "members_only"),
    ("muc#roomconfig_moderatedroom", "boolean", "moderated"),
    ("muc#roomconfig_passwordprotectedroom", "boolean", None),
    ("muc#roomconfig_roomsecret", "text-private", "password"),
    ("muc#roomconfig_whois", "list-single", "whois"),
    ("muc#roomconfig_maxusers", "text-single", "max_users"),
    ("muc#roomconfig_changesubject", "boolean", "change_subject"),
    ("muc#roomconfig_enablelogging", "boolean", "logging"),
)


@dataclass(slots=True)
class Occupant:
    nick: str
    jid: JID  # the real full JID
    affiliation: str
    role: str
    presence: Element


@dataclass(slots=True)
class Room:
    jid: JID
    occupants: dict[str, Occupant] = field(default_factory=dict)  # by nick
    nicks: dict[JID, str] = field(default_factory=dict)  # real full JID → nick
    affiliations: dict[JID, str] = field(default_factory=dict)  # bare JID → affiliation
    history: deque[tuple[Element, float]] = field(default_factory=deque)
    subject: str = ""
    subject_by: str = ""
    config: RoomConfig = field(default_factory=RoomConfig)


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MucModule(Module):
    name = "muc"
    description = "Group chat rooms: join, talk, history, subject, nicks, private messages"
    xeps = (
        Xep(
            45,
            "1.35",
            "partial",
            "rooms, presence codes, history, subject, nicks, PMs, kick, ban, voice, "
            "affiliations, configuration, persistence, invitations, room archive, "
            "occupant-id, self-ping; no voice requests or message moderation yet",
        ),
    )

    async def start(self) -> None:
        path = f'hosts."{self.ctx.domain}".modules.muc'
        self.options = build_options(MucOptions, self.ctx.options, path)
        if self.options.history_length < 0 or self.options.max_occupants < 1:
            raise ConfigError(f"{path}: history_length ≥ 0 and max_occupants ≥ 1")
        self.domain = self.options.service or f"conference.{self.ctx.domain}"
        self.rooms: dict[JID, Room] = {}
        self.db = self.ctx.server.db_or_fail()
        await self.db.migrate(MIGRATIONS)
        self.secret = self.ctx.server.derived_secret("muc occupant-id")  # stable ids
        for room in await self.db.run(_load_rooms):
            self.rooms[room.jid] = room
        registry = self.service = self.ctx.server.add_service(self.domain)
        registry.add_hook("presence/full", self.on_presence)
        registry.add_hook("presence/bare", self.on_presence)
        registry.add_hook("message/bare", self.on_room_message)
        registry.add_hook("message/full", self.on_private_message)
        registry.add_iq_handler("get", ns.DISCO_INFO, Target.HOST, self.service_info)
        registry.add_iq_handler("get", ns.DISCO_ITEMS, Target.HOST, self.service_items)
        registry.add_iq_handler("get", ns.DISCO_INFO, Target.BARE, self.room_info)
        registry.add_iq_handler("set", MUC_ADMIN, Target.BARE, self.admin_set)
        registry.add_iq_handler("get", MUC_ADMIN, Target.BARE, self.admin_get)
        registry.add_iq_handler("get", MUC_OWNER, Target.BARE, self.owner_get)
        registry.add_iq_handler("set", MUC_OWNER, Target.BARE, self.owner_set)
        registry.add_iq_handler("set", MAM, Target.BARE, self.archive_query)
        registry.add_hook("iq/full", self.self_ping)
        self._registry: HostRegistry = registry
        self.ctx.registry.add_feature(MUC)  # the host points clients at its service

    async def stop(self) -> None:
        self.ctx.server.remove_service(self.domain)
        self.ctx.registry.remove_feature(MUC)

    # --- sending ----------------------------------------------------------------------
    async def _send(self, element: Element) -> None:
        await self.ctx.send(element)

    def _item(self, occupant: Occupant, to_moderator: bool) -> Element:
        x = Element("x", MUC_USER)
        item = x.add("item", MUC_USER, {"affiliation": occupant.affiliation, "role": occupant.role})
        if to_moderator:
            item.attrs["jid"] = str(occupant.jid)  # semi-anonymous: moderators see real JIDs
        return x

    def _presence_of(
        self, room: Room, occupant: Occupant, to: Occupant, codes: tuple[str, ...] = ()
    ) -> Element:
        el = occupant.presence.shallow_copy()
        el.children = [
            c for c in el.children if not (isinstance(c, Element) and c.ns in (MUC, MUC_USER))
        ]
        el.attrs = {k: v for k, v in el.attrs.items() if k not in ("to", "from", "id")}
        el.attrs["from"] = f"{room.jid}/{occupant.nick}"
        el.attrs["to"] = str(to.jid)
        el.children = [
            c for c in el.children if not (isinstance(c, Element) and c.ns == OCCUPANT_ID)
        ]
        el.add("occupant-id", OCCUPANT_ID, {"id": self._occupant_id(room, occupant)})
        x = self._item(occupant, to.role == "moderator" or room.config.whois == "anyone")
        for code in codes:
            x.add("status", MUC_USER, {"code": code})
        el.append(x)
        return el

    def _occupant_id(self, room: Room, occupant: Occupant) -> str:
        """XEP-0421: stable per room and real account, revealing neither."""
        digest = hmac.new(self.secret, f"{room.jid}\0{occupant.jid.bare}".encode(), "sha256")
        return base64.urlsafe_b64encode(digest.digest()[:18]).decode()

    # --- presence: join, update, nick change, leave -------------------------------------
    async def on_presence(self, stanza: Stanza) -> bool:
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None:
            return False  # presence to the service itself: nothing to do
        room_jid = to.bare
        nick = to.resource
        room = self.rooms.get(room_jid)
        type_ = stanza.type
        if type_ == "unavailable":
            if room is not None and sender in room.nicks:
                await self._leave(room, room.nicks[sender], stanza.element)
            return True
        if type_ not in ("available",):
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
        await self._join(room_jid, nick, sender, stanza)
        return True

    async def _join(self, room_jid: JID, nick: str, sender: JID, stanza: Stanza) -> None:
        room = self.rooms.get(room_jid)
        created = room is None
        if room is None:
            if len(self.rooms) >= self.options.max_rooms:
                raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, "too many rooms")
            room = Room(room_jid)
            room.affiliations[sender.bare] = "owner"
        affiliation = room.affiliations.get(sender.bare, "none")
        if affiliation == "outcast":
            raise StanzaError(StanzaCondition.FORBIDDEN, "you are banned from this room")  # §7.2.7
        config = room.config
        if config.members_only and affiliation == "none":
            raise StanzaError(StanzaCondition.REGISTRATION_REQUIRED, "members only")  # §7.2.6
        if config.password and affiliation not in ("owner", "admin"):
            request = stanza.element.find("x", MUC)
            given = request.child_text("password", MUC) if request is not None else None
            if given != config.password:
                raise StanzaError(StanzaCondition.NOT_AUTHORIZED, "a password is required")
        existing = room.occupants.get(nick)
        if existing is not None and existing.jid.bare != sender.bare:
            raise StanzaError(StanzaCondition.CONFLICT, "that nickname is taken")  # §7.2.9
        limit = min(self.options.max_occupants, config.max_users or self.options.max_occupants)
        if len(room.occupants) >= limit:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE, "the room is full")  # §7.2.10
        if created:
            self.rooms[room_jid] = room
        occupant = Occupant(
            nick,
            sender,
            affiliation,
            "moderator"
            if affiliation in ("owner", "admin")
            else "visitor"
            if config.moderated and affiliation == "none"
            else "participant",
            stanza.element,
        )
        # §7.2.3: first everyone already there, to the newcomer ...
        for other in room.occupants.values():
            await self._send(self._presence_of(room, other, occupant))
        room.occupants[nick] = occupant
        room.nicks[sender] = nick
        # ... then the newcomer to everyone, itself last with 110 (and 201 for a new room).
        for other in list(room.occupants.values()):
            if other is not occupant:
                await self._send(self._presence_of(room, occupant, other))
        codes = ("110", "201") if created else ("110",)
        if config.whois == "anyone":
            codes = (*codes, "100")  # §7.2.3: the room is non-anonymous
        await self._send(self._presence_of(room, occupant, occupant, codes))
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
        wanted = list(room.history)
        request = join.find("x", MUC)
        history = request.find("history", MUC) if request is not None else None
        if history is not None:
            if "maxstanzas" in history.attrs:
                try:
                    count = max(0, int(history.attrs["maxstanzas"]))
                except ValueError:
                    count = len(wanted)
                wanted = wanted[len(wanted) - count :] if count else []
            if "seconds" in history.attrs:
                try:
                    horizon = time.time() - float(history.attrs["seconds"])
                    wanted = [(m, at) for m, at in wanted if at >= horizon]
                except ValueError:
                    pass
            if history.attrs.get("maxchars") == "0":
                wanted = []
        for message, at in wanted:
            copy = message.copy()
            copy.attrs["to"] = str(occupant.jid)
            copy.add("delay", ns.DELAY, {"from": str(room.jid), "stamp": _stamp(at)})
            await self._send(copy)

    async def _broadcast_presence(self, room: Room, occupant: Occupant) -> None:
        for other in list(room.occupants.values()):
            codes = ("110",) if other is occupant else ()
            await self._send(self._presence_of(room, occupant, other, codes))

    async def _change_nick(self, room: Room, old: str, new: str, stanza: Stanza) -> None:
        """§7.6: unavailable with 303 and the new nick, then available under the new one."""
        taken = room.occupants.get(new)
        occupant = room.occupants[old]
        if taken is not None and taken.jid.bare != occupant.jid.bare:
            raise StanzaError(StanzaCondition.CONFLICT, "that nickname is taken")
        for other in list(room.occupants.values()):
            gone = Element("presence", ns.CLIENT, {"type": "unavailable"})
            gone.attrs.update({"from": f"{room.jid}/{old}", "to": str(other.jid)})
            x = self._item(occupant, other.role == "moderator")
            item = x.find("item", MUC_USER)
            assert item is not None
            item.attrs["nick"] = new
            x.add("status", MUC_USER, {"code": "303"})
            if other is occupant:
                x.add("status", MUC_USER, {"code": "110"})
            gone.append(x)
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
            el = self._presence_of(room, occupant, other, ("110",) if other is occupant else ())
            el.attrs["type"] = "unavailable"
            await self._send(el)
        if not room.occupants and not room.config.persistent:
            del self.rooms[room.jid]  # temporary rooms end with their last occupant

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
        nick = room.nicks.get(sender)
        if nick is None:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "join the room first")  # §7.4
        user_x = stanza.element.find("x", MUC_USER)
        if user_x is not None and user_x.find("invite", MUC_USER) is not None:
            await self._invite(room, room.occupants[nick], user_x)
            return True
        if stanza.type != "groupchat":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "messages to a room are groupchat")
        occupant = room.occupants[nick]
        if occupant.role == "visitor":
            raise StanzaError(StanzaCondition.FORBIDDEN, "visitors have no voice")  # §7.4
        el = stanza.element
        subject = el.find("subject", ns.CLIENT)
        if subject is not None and el.find("body", ns.CLIENT) is None:
            if occupant.role != "moderator" and not room.config.change_subject:
                raise StanzaError(StanzaCondition.FORBIDDEN, "only moderators change the subject")
            room.subject, room.subject_by = subject.text, nick
            await self._save(room)
        message = el.copy()
        message.attrs = {k: v for k, v in message.attrs.items() if k in ("id", "type")}
        message.attrs["from"] = f"{room.jid}/{nick}"
        message.children = [  # only the room stamps its own ids (XEP-0359 §5, XEP-0421 §4)
            c
            for c in message.children
            if not (isinstance(c, Element) and c.ns in (SID, OCCUPANT_ID))
        ]
        message.add("occupant-id", OCCUPANT_ID, {"id": self._occupant_id(room, occupant)})
        archive = self.ctx.registry.archive
        if archive is not None and room.config.logging and message.find("body", ns.CLIENT):
            archive_id = await archive.archive(room.jid, occupant.jid, message)
            message.add("stanza-id", SID, {"by": str(room.jid), "id": archive_id})
        if message.find("body", ns.CLIENT) is not None and self.options.history_length:
            room.history.append((message, time.time()))
            while len(room.history) > self.options.history_length:
                room.history.popleft()
        for other in list(room.occupants.values()):
            copy = message.shallow_copy()
            copy.attrs["to"] = str(other.jid)
            await self._send(copy)
        return True

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
        message = stanza.element.copy()
        message.attrs["from"] = f"{room.jid}/{nick}"
        message.attrs["to"] = str(target.jid)
        message.add("x", MUC_USER)  # XEP-0045 §7.5: marks it as a MUC private message
        await self._send(message)
        return True

    async def _invite(self, room: Room, inviter: Occupant, x: Element) -> None:
        """§7.8.2 mediated invitations: the room passes them on, from itself. In a
        members-only room only admins and owners invite, and the invitee becomes a member."""
        privileged = inviter.affiliation in ("owner", "admin")
        if room.config.members_only and not privileged:
            raise StanzaError(StanzaCondition.FORBIDDEN, "only admins invite to this room")
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

    async def archive_query(self, iq: Stanza) -> Element | None:
        """XEP-0313 §6 on a room: its occupants and members read its archive."""
        assert iq.to is not None
        assert iq.from_ is not None
        room = self.rooms.get(iq.to.bare)
        archive = self.ctx.registry.archive
        if room is None or archive is None or not room.config.logging:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no archive for that room")
        affiliation = room.affiliations.get(iq.from_.bare, "none")
        if iq.from_ not in room.nicks and affiliation in ("none", "outcast"):
            raise StanzaError(StanzaCondition.FORBIDDEN, "join the room to read its history")
        return await archive.answer(room.jid, iq)

    # --- moderation (muc#admin, XEP-0045 §8-§9) ---------------------------------------
    def _actor(self, iq: Stanza) -> tuple[Room, Occupant | None, str]:
        assert iq.to is not None
        assert iq.from_ is not None
        room = self.rooms.get(iq.to.bare)
        if room is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such room")
        nick = room.nicks.get(iq.from_)
        actor = room.occupants.get(nick) if nick is not None else None
        return room, actor, room.affiliations.get(iq.from_.bare, "none")

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
        """§9.5/§10.5: the list of one affiliation (admins and owners only)."""
        room, _actor, rank = self._actor(iq)
        if rank not in ("owner", "admin"):
            raise StanzaError(StanzaCondition.FORBIDDEN)
        payload = iq.payload
        assert payload is not None
        wanted = {i.attrs.get("affiliation") for i in payload.find_all("item", MUC_ADMIN)}
        query = Element("query", MUC_ADMIN)
        for jid, affiliation in sorted(room.affiliations.items(), key=lambda kv: str(kv[0])):
            if affiliation in wanted:
                query.add("item", MUC_ADMIN, {"jid": str(jid), "affiliation": affiliation})
        return query

    async def _set_role(
        self, room: Room, actor: Occupant | None, nick: str, role: str, reason: str
    ) -> None:
        """§8.2 kick (role none), §8.3-8.4 voice (participant/visitor)."""
        if role not in ROLES:
            raise StanzaError(StanzaCondition.BAD_REQUEST, f"no role {role!r}")
        if actor is None or actor.role != "moderator":
            raise StanzaError(StanzaCondition.FORBIDDEN, "only moderators change roles")
        target = room.occupants.get(nick)
        if target is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such occupant")
        if RANK[target.affiliation] > RANK[actor.affiliation] or (
            target.affiliation in ("owner", "admin") and role != "moderator"
        ):
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "not over that occupant")  # §8.2
        if role == "moderator" and RANK[actor.affiliation] < RANK["admin"]:
            raise StanzaError(StanzaCondition.FORBIDDEN, "only admins grant moderation")
        if role == "none":
            await self._remove(room, target, "307", reason)
            return
        target.role = role
        await self._broadcast_presence(room, target)

    async def _set_affiliation(
        self, room: Room, rank: str, jid_text: str, affiliation: str, reason: str
    ) -> None:
        """§9.1 ban (outcast) and §9.3-§10 memberships; admins and owners only."""
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
        if current == "owner" and sum(a == "owner" for a in room.affiliations.values()) == 1:
            raise StanzaError(StanzaCondition.CONFLICT, "a room keeps at least one owner")
        if affiliation == "none":
            room.affiliations.pop(target, None)
        else:
            room.affiliations[target] = affiliation
        await self._save(room)
        for occupant in [o for o in room.occupants.values() if o.jid.bare == target]:
            occupant.affiliation = affiliation
            if affiliation == "outcast":
                await self._remove(room, occupant, "301", reason)
            else:
                occupant.role = "moderator" if affiliation in ("owner", "admin") else "participant"
                await self._broadcast_presence(room, occupant)

    async def _remove(self, room: Room, occupant: Occupant, code: str, reason: str) -> None:
        """Kicked (307) or banned (301): everyone, the occupant too, sees it leave."""
        del room.occupants[occupant.nick]
        room.nicks.pop(occupant.jid, None)
        occupant.role = "none"
        for other in [*room.occupants.values(), occupant]:
            codes = (code, "110") if other is occupant else (code,)
            el = self._presence_of(room, occupant, other, codes)
            el.attrs["type"] = "unavailable"
            if reason:
                x = el.find("x", MUC_USER)
                item = x.find("item", MUC_USER) if x is not None else None
                if item is not None:
                    item.add("reason", MUC_USER, text=reason)
            await self._send(el)
        if not room.occupants and not room.config.persistent:
            del self.rooms[room.jid]

    # --- configuration (muc#owner, XEP-0045 §10) -------------------------------------
    def _owner_room(self, iq: Stanza) -> Room:
        room, _actor, rank = self._actor(iq)
        if rank != "owner":
            raise StanzaError(StanzaCondition.FORBIDDEN, "only owners configure a room")
        return room

    async def owner_get(self, iq: Stanza) -> Element | None:
        """§10.2: the configuration form with the room's current values."""
        config = self._owner_room(iq).config
        query = Element("query", MUC_OWNER)
        form = query.add("x", DATA, {"type": "form"})
        form.add("field", DATA, {"var": "FORM_TYPE", "type": "hidden"}).add(
            "value", DATA, text=ROOMCONFIG
        )
        for var, type_, attr in FIELDS:
            value = getattr(config, attr) if attr else bool(config.password)
            text = ("1" if value else "0") if isinstance(value, bool) else str(value)
            fld = form.add("field", DATA, {"var": var, "type": type_})
            if var == "muc#roomconfig_whois":
                for option in ("moderators", "anyone"):
                    fld.add("option", DATA).add("value", DATA, text=option)
            fld.add("value", DATA, text=text)
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
        if form is None or form.attrs.get("type") == "cancel":
            return None
        if form.attrs.get("type") != "submit":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "submit or cancel the form")
        room.config = _apply(room.config, form)
        await self._save(room)
        if not room.occupants and not room.config.persistent:
            self.rooms.pop(room.jid, None)
        return None

    async def _destroy(self, room: Room, destroy: Element) -> None:
        """§10.9: everyone leaves with the reason (and an alternate venue, if given)."""
        for occupant in list(room.occupants.values()):
            el = self._presence_of(room, occupant, occupant, ())
            el.attrs["type"] = "unavailable"
            x = el.find("x", MUC_USER)
            assert x is not None
            x.append(destroy.renamespaced(MUC_OWNER, MUC_USER))
            await self._send(el)
        self.rooms.pop(room.jid, None)
        jid = str(room.jid)

        def delete(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM muc_rooms WHERE jid = ?", (jid,))

        await self.db.run(delete)

    async def _save(self, room: Room) -> None:
        """Persistent rooms keep their configuration, affiliations and subject."""
        jid = str(room.jid)
        if not room.config.persistent:

            def forget(conn: sqlite3.Connection) -> None:
                with transaction(conn):
                    conn.execute("DELETE FROM muc_rooms WHERE jid = ?", (jid,))

            await self.db.run(forget)
            return
        row = (
            jid,
            room.config.to_json(),
            json.dumps({str(k): v for k, v in room.affiliations.items()}),
            room.subject,
        )

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT OR REPLACE INTO muc_rooms (jid, config, affiliations, subject)"
                    " VALUES (?, ?, ?, ?)",
                    row,
                )

        await self.db.run(write)

    # --- discovery --------------------------------------------------------------------
    async def service_info(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_INFO)
        query.add("identity", ns.DISCO_INFO, {"category": "conference", "type": "text"})
        for feature in (ns.DISCO_INFO, ns.DISCO_ITEMS, MUC):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        return query

    async def service_items(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_ITEMS)
        for room in sorted(self.rooms.values(), key=lambda r: str(r.jid)):
            if not room.config.public:
                continue
            query.add("item", ns.DISCO_ITEMS, {"jid": str(room.jid), "name": room.jid.local or ""})
        return query

    async def room_info(self, iq: Stanza) -> Element | None:
        assert iq.to is not None
        room = self.rooms.get(iq.to.bare)
        if room is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)
        query = Element("query", ns.DISCO_INFO)
        query.add(
            "identity",
            ns.DISCO_INFO,
            {"category": "conference", "type": "text", "name": room.jid.local or ""},
        )
        c = room.config
        for feature in (
            MUC,
            "muc_public" if c.public else "muc_hidden",
            "muc_membersonly" if c.members_only else "muc_open",
            "muc_nonanonymous" if c.whois == "anyone" else "muc_semianonymous",
            "muc_persistent" if c.persistent else "muc_temporary",
            "muc_moderated" if c.moderated else "muc_unmoderated",
            "muc_passwordprotected" if c.password else "muc_unsecured",
            *((MAM, SID) if c.logging and self.ctx.registry.archive is not None else ()),
            OCCUPANT_ID,
            "http://jabber.org/protocol/muc#self-ping-optimization",
        ):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        return query


def _apply(config: RoomConfig, form: Element) -> RoomConfig:
    """The configuration a submitted form asks for; unknown fields are ignored."""
    values: dict[str, object] = {}
    by_var = {var: (type_, attr) for var, type_, attr in FIELDS}
    protected: bool | None = None
    for fld in form.find_all("field", DATA):
        var = fld.attrs.get("var", "")
        if var not in by_var:
            continue
        type_, attr = by_var[var]
        text = fld.child_text("value", DATA) or ""
        if type_ == "boolean":
            flag = text in ("1", "true")
            if attr is None:
                protected = flag
            else:
                values[attr] = flag
        elif attr == "max_users":
            try:
                values[attr] = max(0, int(text or "0"))
            except ValueError as exc:
                raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "maxusers is a number") from exc
        elif attr == "whois":
            if text not in ("moderators", "anyone"):
                raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "whois: moderators or anyone")
            values[attr] = text
        elif attr is not None:
            values[attr] = text
    updated = dataclasses.replace(config, **values)  # type: ignore[arg-type]
    if protected is False:
        updated = dataclasses.replace(updated, password="")
    return updated


def _load_rooms(conn: sqlite3.Connection) -> list[Room]:
    rooms = []
    for jid, config, affiliations, subject in conn.execute(
        "SELECT jid, config, affiliations, subject FROM muc_rooms"
    ).fetchall():
        room = Room(JID.parse(str(jid)), config=RoomConfig.from_json(str(config)))
        room.affiliations = {JID.parse(k): str(v) for k, v in json.loads(str(affiliations)).items()}
        room.subject = str(subject)
        rooms.append(room)
    return rooms
