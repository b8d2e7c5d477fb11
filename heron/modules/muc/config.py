"""A room's configuration (XEP-0045 §10.2 muc#roomconfig) and the form that reads and writes
it, with the namespaces and the role and affiliation names every part of the package uses."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Final

from heron.ns import (
    DATA_FORMS as DATA,
)
from heron.ns import (
    FALLBACK,
    MAM,
    MODERATE,
    MUC,
    MUC_ADMIN,
    MUC_OWNER,
    MUC_REGISTER,
    MUC_REQUEST,
    MUC_USER,
    OCCUPANT_ID,
    RETRACT,
    SID,
    VCARD,
)
from heron.ns import (
    MUC_ROOMCONFIG as ROOMCONFIG,
)
from heron.ns import (
    MUC_ROOMINFO as ROOMINFO,
)
from heron.ns import (
    MUC_SELF_PING as SELF_PING,
)
from heron.stanza import StanzaCondition, StanzaError
from heron.xmlstream.element import Element

# What the rest of the package takes from here, the namespaces of ns under its own names too.
__all__ = [
    "AFFILIATIONS",
    "DATA",
    "FALLBACK",
    "FIELDS",
    "MAM",
    "MODERATE",
    "MUC",
    "MUC_ADMIN",
    "MUC_OWNER",
    "MUC_REGISTER",
    "MUC_REQUEST",
    "MUC_USER",
    "NUMBERS",
    "OCCUPANT_ID",
    "PM_POLICIES",
    "RANK",
    "RETRACT",
    "ROLES",
    "ROOMCONFIG",
    "ROOMINFO",
    "SELF_PING",
    "SID",
    "VCARD",
    "RoomConfig",
    "apply_form",
    "config_form",
    "field_values",
]

AFFILIATIONS: Final = ("owner", "admin", "member", "none", "outcast")
ROLES: Final = ("moderator", "participant", "visitor", "none")
RANK: Final = {"owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0}
PM_POLICIES: Final = ("anyone", "participants", "moderators", "none")


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
