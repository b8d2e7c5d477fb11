"""XEP-0352 Client State Indication: an inactive client (a phone in a pocket) is spared what
can wait.

While a session is inactive, presence updates are held and collapsed (only the latest from
each sender is kept), and so are messages that carry only chat states (XEP-0085). Anything
else (a message with a body, an IQ, a subscription request) is delivered at once, after
what was held, so the order a client sees never changes. ``<active/>`` flushes the rest;
past ``max_held`` stanzas everything is flushed too.
"""

from __future__ import annotations

from dataclasses import dataclass

from heron import ns
from heron.config import option
from heron.core.module import Module, ModuleContext, Xep, hook, nonza, stream_feature
from heron.core.sessions import Session
from heron.jid import JID
from heron.stanza import Stanza
from heron.xmlstream.element import Element


@dataclass(frozen=True, slots=True)
class CsiOptions:
    max_held: int = option(200, min=1)


def can_wait(el: Element) -> str | None:
    """A key for a stanza that may be held (the latest per key survives), or None."""
    if el.tag == "presence" and el.attrs.get("type") in (None, "unavailable"):
        return f"presence {el.attrs.get('from', '')}"
    if el.tag == "message" and el.attrs.get("type") != "error":
        children = list(el.elements())
        if children and all(c.ns == ns.CHATSTATES for c in children):
            return f"chatstate {el.attrs.get('from', '')}"
    return None


class Held:
    """The stanzas an inactive session has not been sent yet, in order, collapsed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: dict[str, Element] = {}

    def offer(self, el: Element) -> list[Element]:
        key = can_wait(el)
        if key is None or len(self.items) >= self.limit:
            return [*self.flush(), el]
        self.items.pop(key, None)  # the newer one replaces it, at the end of the queue
        self.items[key] = el
        return []

    def flush(self) -> list[Element]:
        items, self.items = list(self.items.values()), {}
        return items


class CsiModule(Module):
    name = "csi"
    description = "Client state indication: inactive clients get only what cannot wait"
    xeps = (Xep(352, "1.0.0", "complete"),)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(CsiOptions)
        self.held: dict[JID, Held] = {}

    @stream_feature("postauth")
    def feature(self) -> Element:
        return Element("csi", ns.CSI)

    @nonza(ns.CSI)
    async def on_state(self, session: Session, el: Element) -> None:
        if el.tag == "inactive":
            if session.jid not in self.held:
                fresh = self.held[session.jid] = Held(self.options.max_held)
                session.set_hold(fresh.offer)
        elif el.tag == "active":
            waiting = self.held.pop(session.jid, None)
            session.set_hold(None)
            if waiting is not None:
                for stanza in waiting.flush():
                    session.deliver(stanza)

    @hook("session/ended")
    async def forget(self, stanza: Stanza) -> bool:
        if stanza.from_ is not None:
            self.held.pop(stanza.from_, None)
        return False
