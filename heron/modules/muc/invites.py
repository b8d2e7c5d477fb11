"""Invitations (XEP-0045 §7.8): the room passes mediated invitations on, and declines back."""

from __future__ import annotations

from heron import ns
from heron.jid import JID
from heron.modules.muc.config import MUC_USER
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
