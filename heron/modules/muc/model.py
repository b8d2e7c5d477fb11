"""Rooms, occupants and configuration (XEP-0045 §10.2 muc#roomconfig, §15.5.4 muc#roominfo),
with the forms that read and write them and the rows that persist them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from heron.jid import JID
from heron.ratelimit import TokenBucket
from heron.stanza import StanzaCondition, StanzaError
from heron.storage.sqlite import Migration
from heron.xmlstream.element import Element

MUC: Final = "http://jabber.org/protocol/muc"
MUC_USER: Final = "http://jabber.org/protocol/muc#user"
MUC_ADMIN: Final = "http://jabber.org/protocol/muc#admin"
MUC_OWNER: Final = "http://jabber.org/protocol/muc#owner"
MUC_REQUEST: Final = "http://jabber.org/protocol/muc#request"
MUC_REGISTER: Final = "http://jabber.org/protocol/muc#register"
ROOMCONFIG: Final = "http://jabber.org/protocol/muc#roomconfig"
ROOMINFO: Final = "http://jabber.org/protocol/muc#roominfo"
DATA: Final = "jabber:x:data"

AFFILIATIONS: Final = ("owner", "admin", "member", "none", "outcast")
ROLES: Final = ("moderator", "participant", "visitor", "none")
RANK: Final = {"owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0}
PM_POLICIES: Final = ("anyone", "participants", "moderators", "none")

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
    Migration(
        "muc",
        2,
        """
        ALTER TABLE muc_rooms ADD COLUMN registered TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE muc_rooms ADD COLUMN vcard TEXT NOT NULL DEFAULT '';
        """,
    ),
)


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
    allow_invites: bool = True  # may participants invite (open rooms)?
    allow_pm: str = "anyone"  # whose private messages the room passes on (PM_POLICIES)
    history_length: int = 20  # messages sent on join (muc#maxhistoryfetch)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RoomConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


# (var, type, RoomConfig attribute or None for the password switch, options of a list)
FIELDS: Final[tuple[tuple[str, str, str | None, tuple[str, ...]], ...]] = (
    ("muc#roomconfig_roomname", "text-single", "name", ()),
    ("muc#roomconfig_roomdesc", "text-single", "description", ()),
    ("muc#roomconfig_persistentroom", "boolean", "persistent", ()),
    ("muc#roomconfig_publicroom", "boolean", "public", ()),
    ("muc#roomconfig_membersonly", "boolean", "members_only", ()),
    ("muc#roomconfig_moderatedroom", "boolean", "moderated", ()),
    ("muc#roomconfig_passwordprotectedroom", "boolean", None, ()),
    ("muc#roomconfig_roomsecret", "text-private", "password", ()),
    ("muc#roomconfig_whois", "list-single", "whois", ("moderators", "anyone")),
    ("muc#roomconfig_maxusers", "text-single", "max_users", ()),
    ("muc#roomconfig_changesubject", "boolean", "change_subject", ()),
    ("muc#roomconfig_enablelogging", "boolean", "logging", ()),
    ("muc#roomconfig_allowinvites", "boolean", "allow_invites", ()),
    ("muc#roomconfig_allowpm", "list-single", "allow_pm", PM_POLICIES),
    ("muc#maxhistoryfetch", "text-single", "history_length", ()),
)
NUMBERS: Final = ("max_users", "history_length")


@dataclass(slots=True)
class Occupant:
    nick: str
    jid: JID  # the real full JID
    affiliation: str
    role: str
    presence: Element
    bucket: TokenBucket  # messages to the room (limits.messages_per_s)


@dataclass(slots=True)
class Room:
    jid: JID
    occupants: dict[str, Occupant] = field(default_factory=dict)  # by nick
    nicks: dict[JID, str] = field(default_factory=dict)  # real full JID → nick
    affiliations: dict[JID, str] = field(default_factory=dict)  # bare JID → affiliation
    registered: dict[JID, str] = field(default_factory=dict)  # bare JID → reserved nick
    history: deque[tuple[Element, float]] = field(default_factory=deque)
    subject: str = ""
    subject_by: str = ""
    vcard: str = ""  # the room's vcard-temp (XEP-0486 avatar), serialized
    config: RoomConfig = field(default_factory=RoomConfig)
    locked: bool = False  # new, until its owner configures it (§10.1.1)
    unlock_deadline: asyncio.TimerHandle | None = None

    def affiliation(self, jid: JID) -> str:
        return self.affiliations.get(jid.bare, "none")

    def owner_of_nick(self, nick: str) -> JID | None:
        """Who registered ``nick`` with this room (§7.10), if anyone."""
        for jid, reserved in self.registered.items():
            if reserved == nick:
                return jid
        return None


def config_form(config: RoomConfig) -> Element:
    """§10.2: the configuration form with the room's current values."""
    form = Element("x", DATA, {"type": "form"})
    form.add("field", DATA, {"var": "FORM_TYPE", "type": "hidden"}).add(
        "value", DATA, text=ROOMCONFIG
    )
    for var, type_, attr, options in FIELDS:
        value = getattr(config, attr) if attr else bool(config.password)
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        fld = form.add("field", DATA, {"var": var, "type": type_})
        for option in options:
            fld.add("option", DATA).add("value", DATA, text=option)
        fld.add("value", DATA, text=text)
    return form


def apply_form(config: RoomConfig, form: Element, max_history: int) -> RoomConfig:
    """The configuration a submitted form asks for; unknown fields are ignored."""
    values: dict[str, object] = {}
    by_var = {var: (type_, attr, options) for var, type_, attr, options in FIELDS}
    protected: bool | None = None
    for fld in form.find_all("field", DATA):
        var = fld.attrs.get("var", "")
        if var not in by_var:
            continue
        type_, attr, options = by_var[var]
        text = fld.child_text("value", DATA) or ""
        if type_ == "boolean":
            flag = text in ("1", "true")
            if attr is None:
                protected = flag
            else:
                values[attr] = flag
        elif attr in NUMBERS:
            try:
                number = max(0, int(text or "0"))
            except ValueError as exc:
                raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, f"{var} is a number") from exc
            values[attr] = min(number, max_history) if attr == "history_length" else number
        elif options:
            if text not in options:
                raise StanzaError(
                    StanzaCondition.NOT_ACCEPTABLE, f"{var}: one of {', '.join(options)}"
                )
            values[attr or var] = text
        elif attr is not None:
            values[attr] = text
    updated = dataclasses.replace(config, **values)  # type: ignore[arg-type]
    if protected is False:
        updated = dataclasses.replace(updated, password="")
    return updated


def field_values(form: Element) -> dict[str, str]:
    """A submitted form's first value per field."""
    return {
        f.attrs.get("var", ""): f.child_text("value", DATA) or ""
        for f in form.find_all("field", DATA)
    }


def room_row(room: Room) -> tuple[str, str, str, str, str, str]:
    return (
        str(room.jid),
        room.config.to_json(),
        json.dumps({str(k): v for k, v in room.affiliations.items()}),
        room.subject,
        json.dumps({str(k): v for k, v in room.registered.items()}),
        room.vcard,
    )


def load_rooms(conn: sqlite3.Connection) -> list[Room]:
    rooms = []
    for jid, config, affiliations, subject, registered, vcard in conn.execute(
        "SELECT jid, config, affiliations, subject, registered, vcard FROM muc_rooms"
    ).fetchall():
        room = Room(JID.parse(str(jid)), config=RoomConfig.from_json(str(config)))
        room.affiliations = {JID.parse(k): str(v) for k, v in json.loads(str(affiliations)).items()}
        room.registered = {JID.parse(k): str(v) for k, v in json.loads(str(registered)).items()}
        room.subject = str(subject)
        room.vcard = str(vcard)
        rooms.append(room)
    return rooms
