"""The routed unit: a top-level stanza with its addresses parsed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from heron.jid import JID
from heron.stanza.errors import StanzaCondition, StanzaError
from heron.xmlstream.element import Element

KINDS: Final = frozenset({"message", "presence", "iq"})
MESSAGE_TYPES: Final = frozenset({"chat", "error", "groupchat", "headline", "normal"})
PRESENCE_TYPES: Final = frozenset(
    {"error", "probe", "subscribe", "subscribed", "unavailable", "unsubscribe", "unsubscribed"}
)


@dataclass(slots=True)
class Stanza:
    """A message, presence or iq on its way through the router.

    ``element`` is the XML as it will be delivered; ``to`` and ``from_`` are the parsed
    addresses (``from_`` is always stamped by the server for client stanzas). ``meta`` carries
    internal annotations that are never serialised.
    """

    element: Element
    to: JID | None
    from_: JID | None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.element.tag

    @property
    def type(self) -> str:
        """The stanza type with RFC defaults: message → normal, presence → available."""
        t = self.element.attrs.get("type")
        if t is not None:
            return t
        return (
            "normal"
            if self.element.tag == "message"
            else "available"
            if (self.element.tag == "presence")
            else ""
        )

    @property
    def id(self) -> str | None:
        return self.element.attrs.get("id")

    @property
    def payload(self) -> Element | None:
        """An IQ's single child element."""
        return self.element.first()

    @property
    def sender(self) -> JID:
        """``from``, which the server stamps on every stanza it routes: handlers rely on it
        (a routed stanza without one is a bug of ours, not the peer's)."""
        if self.from_ is None:
            raise RuntimeError(f"a routed <{self.kind}/> without from")
        return self.from_

    @property
    def query(self) -> Element:
        """An IQ's payload, by which its handler was chosen: handlers rely on it."""
        payload = self.element.first()
        if payload is None:
            raise RuntimeError("an IQ handled without a payload")
        return payload

    def account(self) -> JID:
        """The bare JID of the account the stanza is addressed to; ``bad-request`` when it
        is addressed to a server or a service instead (an account's own data: vCard, private
        XML)."""
        if self.to is None or self.to.local is None:
            raise StanzaError(StanzaCondition.BAD_REQUEST)
        return self.to.bare


def iq_result(iq: Stanza, payload: Element | None = None) -> Element:
    """The result answer to ``iq`` (RFC 6120 §8.2.3)."""
    reply = Element("iq", iq.element.ns, {"type": "result"})
    if iq.id is not None:
        reply.attrs["id"] = iq.id
    if iq.from_ is not None:
        reply.attrs["to"] = str(iq.from_)
    if iq.to is not None:
        reply.attrs["from"] = str(iq.to)
    if payload is not None:
        reply.append(payload)
    return reply
