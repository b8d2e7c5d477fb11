"""The room engine (XEP-0045), without I/O.

A ``Room`` holds its occupants, affiliations, reserved nicks, history, subject and
configuration, and applies the rules: who may enter (§7.2), nick conflicts (§7.2.9, §7.6),
who may act on whom (the role and affiliation tables of §5 and §8-§10), what a configuration
change announces (§10.2.1), which history a joiner gets (§7.2.14). Each operation either
raises ``StanzaError`` before changing anything, or changes the room and returns the stanzas
to send, in order; an ``Outcome`` also says when the room's durable state changed. Time is
an argument (``now``); archives, timers, storage and routing belong to the caller
(service.py and its helpers).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from heron import ns
from heron.jid import JID
from heron.modules.muc.config import (
    AFFILIATIONS,
    MODERATE,
    MUC,
    MUC_OWNER,
    MUC_USER,
    OCCUPANT_ID,
    RANK,
    ROLES,
    SID,
    RoomConfig,
)
from heron.ratelimit import TokenBucket
from heron.stanza import StanzaCondition, StanzaError
from heron.timestamps import parse as parse_time
from heron.timestamps import stamp
from heron.xmlstream import prepare, serialize
from heron.xmlstream.element import Element
from heron.xmlstream.stored import parse_stored

C = StanzaCondition


@dataclass(frozen=True, slots=True)
class RoomPolicy:
    """What the service imposes on every room (from the module options)."""

    max_occupants: int = 200
    max_history: int = 20  # the most messages a room keeps for joiners
    messages_per_s: float = 5.0  # per occupant, to the room
    messages_burst: int = 50
    secret: bytes = b""  # keys the occupant ids (XEP-0421)


@dataclass(slots=True)
class Occupant:
    nick: str
    jid: JID  # the real full JID
    affiliation: str
    role: str
    presence: Element
    bucket: TokenBucket  # messages to the room (limits.messages_per_s)


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """What outlives a restart, for persistent rooms."""

    jid: JID
    config: RoomConfig
    affiliations: Mapping[JID, str]  # bare JID → affiliation
    registered: Mapping[JID, str]  # bare JID → reserved nick
    subject: str = ""
    vcard: str = ""


@dataclass(slots=True)
class Outcome:
    """The stanzas an operation asks to send, in order, and whether what a persistent room
    keeps (``RoomRecord``) changed and must be written before they go out."""

    send: list[Element] = field(default_factory=list)
    changed: bool = False


def role_for(affiliation: str, moderated: bool) -> str:
    """§5.1.2: the role an affiliation brings on entering (or when it changes)."""
    if affiliation in ("owner", "admin"):
        return "moderator"
    if moderated and affiliation == "none":
        return "visitor"
    return "participant"


def require_affiliation(name: str) -> None:
    if name not in AFFILIATIONS:
        raise StanzaError(C.BAD_REQUEST, f"no affiliation {name!r}")


def stanza_id(message: Element) -> str | None:
    for child in message.elements():
        if child.tag == "stanza-id" and child.ns == SID:
            return child.attrs.get("id")
    return None


def _status(x: Element, codes: Iterable[str]) -> None:
    for code in codes:
        x.add("status", MUC_USER, {"code": code})


def _item_of(el: Element) -> Element | None:
    x = el.find("x", MUC_USER)
    return x.find("item", MUC_USER) if x is not None else None


@dataclass(eq=False, slots=True)
class Room:
    jid: JID
    policy: RoomPolicy = field(default_factory=RoomPolicy)
    config: RoomConfig = field(default_factory=RoomConfig)
    occupants: dict[str, Occupant] = field(default_factory=dict)  # by nick
    nicks: dict[JID, str] = field(default_factory=dict)  # real full JID → nick
    affiliations: dict[JID, str] = field(default_factory=dict)  # bare JID → affiliation
    registered: dict[JID, str] = field(default_factory=dict)  # bare JID → reserved nick
    history: deque[tuple[Element, float]] = field(default_factory=deque)
    subject: str = ""
    subject_by: str = ""
    vcard: str = ""  # the room's vcard-temp (XEP-0486 avatar), serialized
    locked: bool = False  # new, until its owner configures it (§10.1.1)

    # --- life ---------------------------------------------------------------------------
    @classmethod
    def create(cls, jid: JID, creator: JID, policy: RoomPolicy, locked: bool = False) -> Room:
        """A new room, owned by whoever asked for it (§10.1.1)."""
        room = cls(jid, policy, RoomConfig(history_length=policy.max_history), locked=locked)
        room.affiliations[creator.bare] = "owner"
        return room

    @classmethod
    def restore(cls, record: RoomRecord, policy: RoomPolicy) -> Room:
        room = cls(record.jid, policy, record.config, subject=record.subject, vcard=record.vcard)
        room.affiliations = dict(record.affiliations)
        room.registered = dict(record.registered)
        return room

    def record(self) -> RoomRecord:
        return RoomRecord(
            self.jid,
            self.config,
            dict(self.affiliations),
            dict(self.registered),
            self.subject,
            self.vcard,
        )

    # --- a cluster: what only memory holds, for the node that takes the room over -------
    def snapshot(self) -> dict[str, str]:
        """The room's state beyond what the room store keeps (a temporary room's record,
        the lock, who set the subject) and every occupant, as text."""
        state = {
            "config": self.config.to_json(),
            "affiliations": {str(k): v for k, v in self.affiliations.items()},
            "registered": {str(k): v for k, v in self.registered.items()},
            "subject": self.subject,
            "subject_by": self.subject_by,
            "vcard": self.vcard,
            "locked": self.locked,
        }
        out = {"room": json.dumps(state)}
        for nick, o in self.occupants.items():
            presence = serialize(o.presence, ns.CLIENT)
            out["o:" + nick] = json.dumps([str(o.jid), o.affiliation, o.role, presence])
        return out

    @classmethod
    def from_snapshot(
        cls, jid: JID, snapshot: Mapping[str, str], policy: RoomPolicy, record: RoomRecord | None
    ) -> Room | None:
        """The room as its previous owner left it: ``record`` (from the room store) when
        the room is persistent, else the snapshot's; None when neither knows the room."""
        raw = snapshot.get("room")
        state = json.loads(raw) if raw else None
        if record is None and state is None:
            return None
        if record is None:
            assert state is not None
            record = RoomRecord(
                jid,
                RoomConfig.from_json(state["config"]),
                {JID.parse(k): str(v) for k, v in state["affiliations"].items()},
                {JID.parse(k): str(v) for k, v in state["registered"].items()},
                str(state["subject"]),
                str(state["vcard"]),
            )
        room = cls.restore(record, policy)
        if state is not None:
            room.subject_by = str(state.get("subject_by", ""))
            room.locked = bool(state.get("locked", False))
        return room

    def readmit(self, snapshot: Mapping[str, str], now: float) -> list[Occupant]:
        """Put back the occupants of a snapshot, sending nothing: to them the room never
        went away. Returns them."""
        back = []
        for key, raw in snapshot.items():
            if not key.startswith("o:"):
                continue
            jid, affiliation, role, xml = json.loads(raw)
            presence = parse_stored(str(xml), ("presence", ns.CLIENT))
            if presence is None:
                continue
            bucket = TokenBucket(self.policy.messages_per_s, self.policy.messages_burst, now)
            occupant = Occupant(key[2:], JID.parse(jid), affiliation, role, presence, bucket)
            self.occupants[occupant.nick] = occupant
            self.nicks[occupant.jid] = occupant.nick
            back.append(occupant)
        return back

    @property
    def over(self) -> bool:
        """A temporary room ends with its last occupant."""
        return not self.occupants and not self.config.persistent

    # --- who is who -----------------------------------------------------------------------
    def affiliation(self, jid: JID) -> str:
        return self.affiliations.get(jid.bare, "none")

    def occupant(self, jid: JID) -> Occupant | None:
        """The occupant joined from this real full JID, if any."""
        nick = self.nicks.get(jid)
        return self.occupants.get(nick) if nick is not None else None

    def owner_of_nick(self, nick: str) -> JID | None:
        """Who registered ``nick`` with this room (§7.10), if anyone."""
        for jid, reserved in self.registered.items():
            if reserved == nick:
                return jid
        return None

    def occupant_id(self, occupant: Occupant) -> str:
        """XEP-0421: stable per room and real account, revealing neither."""
        key = f"{self.jid}\0{occupant.jid.bare}".encode()
        digest = hmac.new(self.policy.secret, key, "sha256")
        return base64.urlsafe_b64encode(digest.digest()[:18]).decode()

    def check_nick(self, nick: str, sender: JID) -> None:
        """§7.2.9: a nick in use by someone else, or reserved by someone else, is taken."""
        existing = self.occupants.get(nick)
        holder = self.owner_of_nick(nick)
        if (existing is not None and existing.jid.bare != sender.bare) or (
            holder is not None and holder != sender.bare
        ):
            raise StanzaError(C.CONFLICT, "that nickname is taken")

    # --- what occupants see -------------------------------------------------------------
    def presence_of(self, occupant: Occupant, to: Occupant, codes: Iterable[str] = ()) -> Element:
        el = occupant.presence.shallow_copy()
        el.children = [
            c
            for c in el.children
            if not (isinstance(c, Element) and c.ns in (MUC, MUC_USER, OCCUPANT_ID))
        ]
        el.attrs = {k: v for k, v in el.attrs.items() if k not in ("to", "from", "id")}
        el.attrs["from"] = f"{self.jid}/{occupant.nick}"
        el.attrs["to"] = str(to.jid)
        el.add("occupant-id", OCCUPANT_ID, {"id": self.occupant_id(occupant)})
        x = Element("x", MUC_USER)
        item = x.add("item", MUC_USER, {"affiliation": occupant.affiliation, "role": occupant.role})
        if self.shows_jids_to(to):
            item.attrs["jid"] = str(occupant.jid)  # semi-anonymous: moderators see real JIDs
        _status(x, codes)
        el.append(x)
        return el

    def unavailable(
        self, occupant: Occupant, to: Occupant, codes: Iterable[str], reason: str = ""
    ) -> Element:
        el = self.presence_of(occupant, to, codes)
        el.attrs["type"] = "unavailable"
        item = _item_of(el)
        if reason and item is not None:
            item.add("reason", MUC_USER, text=reason)
        return el

    def broadcast(self, occupant: Occupant, codes: tuple[str, ...] = ()) -> list[Element]:
        """``occupant``'s presence to everyone, itself with 110."""
        return [
            self.presence_of(occupant, other, ("110", *codes) if other is occupant else codes)
            for other in list(self.occupants.values())
        ]

    def notice(self, codes: tuple[str, ...]) -> list[Element]:
        """§10.2.1: a message from the room itself carrying status codes (104, 170...)."""
        out = []
        for occupant in self.occupants.values():
            message = Element(
                "message",
                ns.CLIENT,
                {"from": str(self.jid), "to": str(occupant.jid), "type": "groupchat"},
            )
            _status(message.add("x", MUC_USER), codes)
            out.append(message)
        return out

    def affiliation_notice(
        self, target: JID, affiliation: str, actor: JID | None, reason: str = ""
    ) -> list[Element]:
        """A message from the room naming the new affiliation of someone not in it (§9, as
        example 195 of version 1.31.2 had it), to whoever may see real JIDs, and to the
        actor if it is not joined; a ban carries 301."""
        out = []
        receivers = [o.jid for o in self.occupants.values() if self.shows_jids_to(o)]
        if actor is not None and actor not in self.nicks:
            receivers.append(actor)
        for to in receivers:
            message = Element("message", ns.CLIENT, {"from": str(self.jid), "to": str(to)})
            x = message.add("x", MUC_USER)
            item = x.add("item", MUC_USER, {"affiliation": affiliation, "jid": str(target)})
            if reason:
                item.add("reason", MUC_USER, text=reason)
            if affiliation == "outcast":
                _status(x, ("301",))
            out.append(message)
        return out

    def shows_jids_to(self, occupant: Occupant) -> bool:
        return occupant.role == "moderator" or self.config.whois == "anyone"

    def fan_out(self, message: Element) -> list[Element]:
        """One copy per occupant, sharing everything but ``to``: the shared part is
        serialized once (prepare), each delivery writes only its own start tag."""
        prepare(message, ns.CLIENT)
        out = []
        for occupant in self.occupants.values():
            copy = message.shallow_copy()
            copy.attrs["to"] = str(occupant.jid)
            out.append(copy)
        return out

    # --- presence: join, update, nick change, leave -------------------------------------
    def join(
        self,
        nick: str,
        sender: JID,
        presence: Element,
        *,
        now: float,
        created: bool = False,
        logged: bool = False,
    ) -> list[Element]:
        """§7.2: enter as ``nick`` (``logged``: an archive keeps the room's messages)."""
        affiliation = self.affiliation(sender)
        if self.locked and affiliation != "owner":  # §10.1.1: locked until configured
            raise StanzaError(C.ITEM_NOT_FOUND, "the room is not configured yet")
        config = self.config
        if affiliation == "outcast":
            raise StanzaError(C.FORBIDDEN, "you are banned from this room")  # §7.2.7
        if config.members_only and affiliation == "none":
            raise StanzaError(C.REGISTRATION_REQUIRED, "members only")  # §7.2.6
        if config.password and affiliation not in ("owner", "admin"):
            request = presence.find("x", MUC)
            given = request.child_text("password", MUC) if request is not None else None
            if given != config.password:
                raise StanzaError(C.NOT_AUTHORIZED, "a password is required")
        self.check_nick(nick, sender)
        most = self.policy.max_occupants
        limit = min(most, config.max_users or most)
        if len(self.occupants) >= limit and affiliation not in ("owner", "admin"):
            raise StanzaError(C.SERVICE_UNAVAILABLE, "the room is full")  # §7.2.10
        bucket = TokenBucket(self.policy.messages_per_s, self.policy.messages_burst, now)
        role = role_for(affiliation, config.moderated)
        occupant = Occupant(nick, sender, affiliation, role, presence, bucket)
        # §7.2.3: first everyone already there, to the newcomer ...
        out = [self.presence_of(other, occupant) for other in self.occupants.values()]
        self.occupants[nick] = occupant
        self.nicks[sender] = nick
        # ... then the newcomer to everyone, itself last with 110 (and 201 for a new room).
        out += [self.presence_of(occupant, o) for o in self.occupants.values() if o is not occupant]
        codes = ["110", "201"] if created else ["110"]
        if config.whois == "anyone":
            codes.append("100")  # §7.2.3: the room is non-anonymous
        if config.logging and logged:
            codes.append("170")  # §7.2.12: the room is logged
        out.append(self.presence_of(occupant, occupant, codes))
        out += self.history_for(occupant, presence, now)
        subject = Element(
            "message",
            ns.CLIENT,
            {"from": f"{self.jid}/{self.subject_by}" if self.subject_by else str(self.jid)},
        )
        subject.attrs.update(to=str(sender), type="groupchat")
        subject.add("subject", ns.CLIENT, text=self.subject)  # §7.2.15: always, even empty
        out.append(subject)
        return out

    def history_for(self, occupant: Occupant, join: Element, now: float) -> list[Element]:
        """§7.2.14: the recent messages, limited as the joining client asked."""
        length = self.config.history_length
        wanted = list(self.history)[-length:] if length else []
        request = join.find("x", MUC)
        history = request.find("history", MUC) if request is not None else None
        if history is not None:
            attrs = history.attrs
            if attrs.get("maxstanzas", "").isdigit():
                count = int(attrs["maxstanzas"])
                wanted = wanted[-count:] if count else []
            horizon: float | None = None
            if attrs.get("seconds", "").isdigit():
                horizon = now - int(attrs["seconds"])
            if "since" in attrs:
                since = parse_time(attrs["since"])
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
        out = []
        for message, at in wanted:
            copy = message.shallow_copy()
            copy.attrs["to"] = str(occupant.jid)
            copy.add("delay", ns.DELAY, {"from": str(self.jid), "stamp": stamp(at)})
            out.append(copy)
        return out

    def probe(self, asker: Occupant | None, nick: str) -> Element:
        """XEP-0045 §7.2 (1.35) presence probes: an occupant asks for another's current
        presence; one no longer there is unavailable."""
        if asker is None:
            raise StanzaError(C.NOT_ACCEPTABLE, "join the room first")
        target = self.occupants.get(nick)
        if target is not None:
            return self.presence_of(target, asker)
        el = Element("presence", ns.CLIENT, {"type": "unavailable", "to": str(asker.jid)})
        el.attrs["from"] = f"{self.jid}/{nick}"
        return el

    def update_presence(self, occupant: Occupant, presence: Element) -> list[Element]:
        occupant.presence = presence
        return self.broadcast(occupant)

    def change_nick(self, occupant: Occupant, new: str, presence: Element) -> list[Element]:
        """§7.6: unavailable with 303 and the new nick, then available under the new one."""
        self.check_nick(new, occupant.jid)
        out = []
        for other in self.occupants.values():
            codes = ("303", "110") if other is occupant else ("303",)
            gone = self.unavailable(occupant, other, codes)
            item = _item_of(gone)
            assert item is not None
            item.attrs["nick"] = new
            out.append(gone)
        del self.occupants[occupant.nick]
        occupant.nick = new
        occupant.presence = presence
        self.occupants[new] = occupant
        self.nicks[occupant.jid] = new
        return out + self.broadcast(occupant)

    def leave(self, occupant: Occupant, presence: Element) -> list[Element]:
        del self.occupants[occupant.nick]
        self.nicks.pop(occupant.jid, None)
        occupant.presence = presence
        occupant.role = "none"
        return [
            self.unavailable(occupant, other, ("110",) if other is occupant else ())
            for other in [*self.occupants.values(), occupant]
        ]

    def remove(
        self, occupant: Occupant, code: str, reason: str = "", actor: str = ""
    ) -> list[Element]:
        """Kicked (307), banned (301) or no longer a member (321, 322): everyone, the
        occupant too, sees it leave."""
        del self.occupants[occupant.nick]
        self.nicks.pop(occupant.jid, None)
        occupant.role = "none"
        out = []
        for other in [*self.occupants.values(), occupant]:
            codes = (code, "110") if other is occupant else (code,)
            el = self.unavailable(occupant, other, codes, reason)
            item = _item_of(el)
            if actor and item is not None:
                item.add("actor", MUC_USER, {"nick": actor})
            out.append(el)
        return out

    def destroy(self, destroy: Element) -> list[Element]:
        """§10.9: everyone leaves with the reason (and an alternate venue, if given)."""
        out = []
        for occupant in self.occupants.values():
            occupant.role = "none"
            el = self.unavailable(occupant, occupant, ())
            x = el.find("x", MUC_USER)
            assert x is not None
            x.append(destroy.renamespaced(MUC_OWNER, MUC_USER))
            out.append(el)
        self.occupants.clear()
        self.nicks.clear()
        return out

    def shutdown(self) -> list[Element]:
        """§15.6 code 332: occupants learn the service is going away."""
        return [self.unavailable(o, o, ("332", "110")) for o in self.occupants.values()]

    # --- messages ---------------------------------------------------------------------
    def groupchat(self, occupant: Occupant, element: Element, now: float) -> tuple[Element, bool]:
        """§7.4/§8.1: the message as the room relays it (from room/nick, with the author's
        occupant-id), and whether it changed the subject."""
        if occupant.role == "visitor":
            raise StanzaError(C.FORBIDDEN, "visitors have no voice")  # §7.4
        if not occupant.bucket.try_take(now):
            raise StanzaError(C.RESOURCE_CONSTRAINT, "too many messages; slow down")
        changed = False
        subject = element.find("subject", ns.CLIENT)
        if subject is not None and element.find("body", ns.CLIENT) is None:
            if occupant.role != "moderator" and not self.config.change_subject:
                raise StanzaError(C.FORBIDDEN, "only moderators change the subject")
            self.subject, self.subject_by = subject.text, occupant.nick
            changed = True
        message = element.copy()
        message.attrs = {k: v for k, v in message.attrs.items() if k in ("id", "type")}
        message.attrs["from"] = f"{self.jid}/{occupant.nick}"
        message.children = [  # only the room stamps its own ids (XEP-0359 §5, XEP-0421 §4)
            c
            for c in message.children
            if not (isinstance(c, Element) and c.ns in (SID, OCCUPANT_ID, MODERATE))
        ]
        message.add("occupant-id", OCCUPANT_ID, {"id": self.occupant_id(occupant)})
        return message, changed

    def publish(self, message: Element, now: float) -> list[Element]:
        """Keep a message with a body for joiners (as many as the service allows), and send
        it to everyone."""
        if message.find("body", ns.CLIENT) is not None and self.policy.max_history:
            self.history.append((message, now))
            while len(self.history) > self.policy.max_history:
                self.history.popleft()
        return self.fan_out(message)

    def find_in_history(self, target_id: str) -> Element | None:
        return next((m for m, _at in self.history if stanza_id(m) == target_id), None)

    def drop_from_history(self, target_id: str) -> None:
        """A retracted message is no longer sent to joiners."""
        self.history = deque((m, at) for m, at in self.history if stanza_id(m) != target_id)

    def private(self, sender: JID, nick: str, element: Element) -> Element:
        """§7.5: a message to room/nick goes to that occupant, from the sender's nick."""
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError(C.ITEM_NOT_FOUND, "no such occupant")
        author = self.occupant(sender)
        if author is None:
            raise StanzaError(C.NOT_ACCEPTABLE, "join the room first")
        if element.attrs.get("type") == "groupchat":
            raise StanzaError(C.BAD_REQUEST, "a private message is not groupchat")
        role, policy = author.role, self.config.allow_pm
        if (
            policy == "none"
            or (policy == "participants" and role not in ("participant", "moderator"))
            or (policy == "moderators" and role != "moderator")
        ):
            raise StanzaError(C.NOT_ALLOWED, "private messages are not allowed here")
        message = element.copy()
        message.attrs["from"] = f"{self.jid}/{author.nick}"
        message.attrs["to"] = str(target.jid)
        message.add("x", MUC_USER)  # XEP-0045 §7.5: marks it as a MUC private message
        return message

    # --- roles and affiliations (§8-§10) ------------------------------------------------
    def set_role(self, actor: Occupant | None, nick: str, role: str, reason: str) -> list[Element]:
        """§8.2 kick (role none), §8.3-8.4 voice (participant/visitor), §9.6-9.7 moderator."""
        if role not in ROLES:
            raise StanzaError(C.BAD_REQUEST, f"no role {role!r}")
        if actor is None or actor.role != "moderator":
            raise StanzaError(C.FORBIDDEN, "only moderators change roles")
        target = self.occupants.get(nick)
        if target is None:
            raise StanzaError(C.ITEM_NOT_FOUND, "no such occupant")
        junior = RANK[actor.affiliation] < RANK["admin"]
        if role == "moderator" and junior:
            raise StanzaError(C.FORBIDDEN, "only admins grant moderation")  # §9.6
        if target.role == "moderator" and target is not actor and junior:
            raise StanzaError(C.NOT_ALLOWED, "only admins act on moderators")
        if RANK[target.affiliation] > RANK[actor.affiliation] or (
            target.affiliation in ("owner", "admin") and role != "moderator"
        ):
            raise StanzaError(C.NOT_ALLOWED, "not over that occupant")  # §8.2
        if role == "none":
            return self.remove(target, "307", reason, actor.nick)
        target.role = role
        return self.broadcast(target)

    def set_affiliation(
        self, rank: str, target: JID, affiliation: str, reason: str, actor: JID | None = None
    ) -> Outcome:
        """§9.1 ban (outcast), §9.3-§9.4 membership, §10.3-§10.8 owners and admins, by
        ``actor`` whose affiliation is ``rank``."""
        require_affiliation(affiliation)
        target = target.bare
        if rank not in ("owner", "admin"):
            raise StanzaError(C.FORBIDDEN, "only admins change affiliations")
        current = self.affiliations.get(target, "none")
        if RANK[current] >= RANK[rank] and rank != "owner":
            raise StanzaError(C.NOT_ALLOWED, "not over that affiliation")  # §9.1
        if affiliation in ("owner", "admin") and rank != "owner":
            raise StanzaError(C.FORBIDDEN, "only owners grant that")
        owners = sum(a == "owner" for a in self.affiliations.values())
        if current == "owner" and affiliation != "owner" and owners == 1:
            raise StanzaError(C.CONFLICT, "a room keeps at least one owner")
        if affiliation == "none":
            self.affiliations.pop(target, None)
        else:
            self.affiliations[target] = affiliation
        if affiliation in ("none", "outcast"):
            self.registered.pop(target, None)
        outcome = Outcome(changed=True)
        present = [o for o in self.occupants.values() if o.jid.bare == target]
        if not present:  # §9.3-§9.8: the room says it itself (as Prosody and ejabberd do)
            outcome.send += self.affiliation_notice(target, affiliation, actor, reason)
        for occupant in present:
            occupant.affiliation = affiliation
            if affiliation == "outcast":
                outcome.send += self.remove(occupant, "301", reason)
            elif affiliation == "none" and self.config.members_only:
                outcome.send += self.remove(occupant, "321", reason)  # §9.4
            else:
                occupant.role = role_for(affiliation, self.config.moderated)
                outcome.send += self.broadcast(occupant)
        return outcome

    # --- configuration (§10.2) and registration (§7.10) ---------------------------------
    def configure(self, after: RoomConfig) -> Outcome:
        """§10.2: a submitted configuration; the first one also unlocks the room (§10.1.2).
        Occupants hear what changed as status codes (§10.2.1)."""
        before, self.config = self.config, after
        was_locked, self.locked = self.locked, False
        outcome = Outcome(changed=True)
        codes = ["104"]
        if after.logging != before.logging:
            codes.append("170" if after.logging else "171")
        if after.whois != before.whois:
            codes.append("172" if after.whois == "anyone" else "173")
        if not was_locked:
            outcome.send += self.notice(tuple(codes))
        if after.whois != before.whois:
            for occupant in list(self.occupants.values()):  # real JIDs shown or hidden
                outcome.send += self.broadcast(occupant)
        if after.members_only and not before.members_only:
            for occupant in list(self.occupants.values()):
                if occupant.affiliation == "none":
                    outcome.send += self.remove(occupant, "322")  # §9.4: members only now
        return outcome
