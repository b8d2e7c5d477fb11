"""XEP-0280 Message Carbons: every device of an account sees the whole conversation.

A resource that enabled carbons gets a ``<received/>`` copy of each eligible message that
reached another resource of its account, and a ``<sent/>`` copy of each eligible message
another resource sent. Eligible (XEP-0280 §6, the suggested rules): type ``chat``, or type
``normal`` with a body; never a message marked ``<private/>`` (the mark is removed before
delivery) or ``<no-copy/>`` (XEP-0334), nor a message that already is a carbon.

XEP-0353 call signals (``propose``, ``ringing``, ``proceed``, ``reject``, ``retract``,
``finish``) are type ``chat``, so they are copied: every device of the callee rings, and
stops when one answers; every device of the caller learns the outcome.
"""

from __future__ import annotations

from heron import ns
from heron.core.module import Module, Xep, hook, iq_handler
from heron.core.registry import Target
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element


def eligible(message: Element, type_: str) -> bool:
    if type_ == "chat":
        pass
    elif type_ != "normal" or message.find("body", ns.CLIENT) is None:
        return False
    for child in message.elements():
        if child.ns == ns.CARBONS or (child.ns == ns.HINTS and child.tag == "no-copy"):
            return False  # private, or already a carbon
    return True


def wrap(kind: str, message: Element, account: JID, to: JID) -> Element:
    """``<message><sent|received><forwarded><message/>`` from the account's bare JID."""
    copy = Element(
        "message",
        ns.CLIENT,
        {"from": str(account), "to": str(to), "type": message.attrs.get("type", "normal")},
    )
    copy.add(kind, ns.CARBONS).add("forwarded", ns.FORWARD).append(message.copy())
    return copy


class CarbonsModule(Module):
    name = "carbons"
    description = "Message carbons: copies of each conversation on every device"
    xeps = (
        Xep(280, "1.0.1", "complete"),
        Xep(353, "0.8.0", "complete"),
    )
    disco_features = (ns.CARBONS,)

    async def start(self) -> None:
        self.enabled: set[JID] = set()  # full JIDs that asked for carbons

    # --- enable / disable -------------------------------------------------------------
    @iq_handler("set", ns.CARBONS, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        payload = iq.payload
        if iq.from_ is None or payload is None:
            raise StanzaError(StanzaCondition.BAD_REQUEST)
        if payload.tag == "enable":
            self.enabled.add(iq.from_)
        elif payload.tag == "disable":
            self.enabled.discard(iq.from_)
        else:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "enable or disable")
        return None

    @hook("session/ended")
    async def forget(self, stanza: Stanza) -> bool:
        if stanza.from_ is not None:
            self.enabled.discard(stanza.from_)
        return False

    def _copies(self, kind: str, stanza: Stanza, account: JID, skip: set[JID]) -> None:
        for session in self.ctx.sessions.resources(account):
            if session.jid in self.enabled and session.jid not in skip:
                session.deliver(wrap(kind, stanza.element, account, session.jid))

    # --- sent -------------------------------------------------------------------------
    @hook("pre-message", priority=-10)  # after blocking and spam checks refused nothing
    async def sent(self, stanza: Stanza) -> bool:
        sender = stanza.from_
        if sender is None or sender.local is None or not eligible(stanza.element, stanza.type):
            private = stanza.element.find("private", ns.CARBONS)
            if private is not None:
                stanza.element.children.remove(private)  # §7: not for the recipient
            return False
        self._copies("sent", stanza, sender.bare, {sender})
        return False

    # --- received ---------------------------------------------------------------------
    @hook("message/delivered")
    async def received(self, stanza: Stanza) -> bool:
        to = stanza.to
        if to is None or to.local is None or not eligible(stanza.element, stanza.type):
            return False
        delivered = stanza.meta.get("delivered_to")
        receivers = delivered if isinstance(delivered, set) else set()
        self._copies("received", stanza, to.bare, receivers)
        return False
