"""XEP-0199: XMPP Ping, answered for the server itself and for the sender's own account.

A ping addressed to another client's full JID is not answered here: the router forwards it
to that client like any other IQ.
"""

from __future__ import annotations

from heron import ns
from heron.core.module import Module, Xep, iq_handler
from heron.core.registry import Target
from heron.stanza import Stanza
from heron.xmlstream.element import Element


class PingModule(Module):
    name = "ping"
    description = "Answers XMPP pings to the server and to the sender's own account."
    xeps = (Xep(199, "2.0.1", "complete"),)
    disco_features = (ns.PING,)

    @iq_handler("get", ns.PING, Target.HOST | Target.SELF)
    async def on_ping(self, iq: Stanza) -> Element | None:
        """XEP-0199 §4.2: the pong is an empty IQ result."""
        return None
