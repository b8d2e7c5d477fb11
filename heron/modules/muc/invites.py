"""Requests the room passes on: mediated invitations and declines (XEP-0045 §7.8), and
voice requests (§7.13, §8.6)."""

from __future__ import annotations

from collections.abc import Mapping

from heron import ns
from heron.jid import JID
from heron.modules.muc.config import DATA, MUC_REQUEST, MUC_USER
from heron.modules.muc.room import Occupant, Outcome, Room
from heron.stanza import StanzaCondition, StanzaError
from heron.xmlstream.element import Element

C = StanzaCondition


def invite(room: Room, inviter: Occupant, x: Element) -> Outcome:
    """§7.8.2 mediated invitations: the room passes them on, from itself. In a
    members-only room only admins and owners invite, and the invitee becomes a member."""
    privileged = inviter.affiliation in ("owner", "admin") or inviter.role == "moderator"
    if (room.config.members_only or not room.config.allow_invites) and not privileged:
        raise StanzaError(C.FORBIDDEN, "you may not invite to this room")
    outcome = Outcome()
    for request in x.find_all("invite", MUC_USER):
        try:
            invitee = JID.parse(request.attrs.get("to", ""))
        except ValueError as exc:
            raise StanzaError(C.JID_MALFORMED) from exc
        if room.config.members_only and room.affiliations.get(invitee.bare) is None:
            room.affiliations[invitee.bare] = "member"
            outcome.changed = True
        message = Element("message", ns.CLIENT, {"from": str(room.jid), "to": str(invitee)})
        out = message.add("x", MUC_USER)
        forwarded = out.add("invite", MUC_USER, {"from": str(inviter.jid.bare)})
        reason = request.child_text("reason", MUC_USER)
        if reason:
            forwarded.add("reason", MUC_USER, text=reason)
        if room.config.password:
            out.add("password", MUC_USER, text=room.config.password)
        outcome.send.append(message)
    return outcome


def decline(room: Room, sender: JID, x: Element) -> Element:
    """§7.8.3: a declined invitation goes back to the inviter, from the room."""
    decline = x.find("decline", MUC_USER)
    assert decline is not None
    try:
        inviter = JID.parse(decline.attrs.get("to", ""))
    except ValueError as exc:
        raise StanzaError(C.JID_MALFORMED) from exc
    message = Element("message", ns.CLIENT, {"from": str(room.jid), "to": str(inviter)})
    out = message.add("x", MUC_USER).add("decline", MUC_USER, {"from": str(sender.bare)})
    reason = decline.child_text("reason", MUC_USER)
    if reason:
        out.add("reason", MUC_USER, text=reason)
    return message


def voice_request(room: Room, asker: Occupant, values: Mapping[str, str]) -> list[Element]:
    """§7.13 a visitor asks for voice: the form goes to every moderator. §8.6 a moderator
    returns it with muc#request_allow set: the visitor becomes a participant."""
    if asker.role == "moderator" and "muc#request_allow" in values:
        if values["muc#request_allow"] not in ("1", "true"):
            return []
        target = room.occupants.get(values.get("muc#roomnick", ""))
        if target is not None and target.role == "visitor":
            target.role = "participant"
            return room.broadcast(target)
        return []
    if asker.role != "visitor" or values.get("muc#role") != "participant":
        raise StanzaError(C.NOT_ACCEPTABLE, "only visitors ask for voice")
    out = []
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
        out.append(message)
    return out
