"""XEP-0065: SOCKS5 Bytestreams, the proxy (a streamhost at ``proxy.DOMAIN``).

Two clients that cannot reach each other directly (both behind NAT) meet at the proxy: its
disco identity is ``proxy/bytestreams``; asked ``<query xmlns='…bytestreams'/>`` it names
its SOCKS5 address (``host``/``port``, as advertised). The target connects, then the
initiator, both giving the stream's hash as the SOCKS5 address; the initiator then
activates the stream with ``<activate>target's full JID</activate>``, and only then are
bytes relayed, under a rate and a total size (see ``heron.core.bytestreams``).

Only the host's own accounts may use it (``forbidden`` for others), so it is no open relay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from heron import ns
from heron.config import option
from heron.core.bytestreams import ListenRequest, ProxyLimits
from heron.core.module import Module, ModuleContext, Xep
from heron.core.registry import Identity, Target
from heron.jid import JID, InvalidJID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

IDENTITY: Final = Identity("proxy", "bytestreams", "SOCKS5 Bytestreams")


_RELAY: Final = ProxyLimits()


@dataclass(frozen=True, slots=True)
class Proxy65Options:
    service: str = ""
    """The proxy's JID; default proxy.<host>."""
    listen_host: str = "127.0.0.1"
    """Where the SOCKS5 listener binds."""
    port: int = option(7777, min=0, max=65535)
    """The listener's port (0: any free port)."""
    public_host: str = ""
    """The address told to clients; default listen_host."""
    public_port: int = option(0, min=0, max=65535)
    """The port told to clients; default the listener's."""
    # The relay's limits (what each means: ProxyLimits), defaults from there.
    bytes_per_s: int = option(_RELAY.bytes_per_s, min=1024)
    max_bytes: int = option(_RELAY.max_bytes, min=1)
    pending_timeout_s: float = option(_RELAY.pending_timeout_s, above=0)
    max_pending: int = option(_RELAY.max_pending, min=2)


class Proxy65Module(Module):
    name = "proxy65"
    description = "SOCKS5 bytestreams proxy for file transfers between clients"
    xeps = (Xep(65, "1.8.2", "partial", "proxy only, TCP; no UDP"),)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = options = ctx.settings(Proxy65Options)
        self.domain = options.service or f"proxy.{ctx.domain}"
        self.request: ListenRequest | None = None

    async def start(self) -> None:
        options = self.options
        registry = self.ctx.add_service(self.domain)
        registry.add_iq_handler("get", ns.DISCO_INFO, Target.HOST, self.info)
        registry.add_iq_handler("get", ns.DISCO_ITEMS, Target.HOST, self.items)
        registry.add_iq_handler("get", ns.BYTESTREAMS, Target.HOST, self.streamhost)
        registry.add_iq_handler("set", ns.BYTESTREAMS, Target.HOST, self.activate)
        self.ctx.add_item(self.domain, "SOCKS5 Bytestreams")
        limits = ProxyLimits(
            options.bytes_per_s, options.max_bytes, options.pending_timeout_s, options.max_pending
        )
        self.request = self.ctx.bytestreams.listen(options.listen_host, options.port, limits)

    def _local_user(self, iq: Stanza) -> JID:
        sender = iq.from_
        if sender is None or sender.local is None or sender.domain != self.ctx.domain:
            # XEP-0065 §6.3.1: a proxy that will not serve the requester says so.
            raise StanzaError(StanzaCondition.FORBIDDEN, "for this server's users only")
        return sender

    async def info(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_INFO)
        query.add(
            "identity",
            ns.DISCO_INFO,
            {"category": IDENTITY.category, "type": IDENTITY.type, "name": IDENTITY.name},
        )
        for feature in (ns.DISCO_INFO, ns.BYTESTREAMS):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        return query

    async def items(self, iq: Stanza) -> Element | None:
        return Element("query", ns.DISCO_ITEMS)

    async def streamhost(self, iq: Stanza) -> Element | None:
        """XEP-0065 §4: the proxy's network address."""
        self._local_user(iq)
        request = self.request
        if request is None or not request.bound.done():
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE, "the proxy is not listening")
        options = self.options
        host = options.public_host or options.listen_host
        port = options.public_port or request.bound.result()
        query = Element("query", ns.BYTESTREAMS)
        query.add(
            "streamhost", ns.BYTESTREAMS, {"jid": self.domain, "host": host, "port": str(port)}
        )
        return query

    async def activate(self, iq: Stanza) -> Element | None:
        """XEP-0065 §6.3.5: the initiator activates the stream to its target."""
        initiator = self._local_user(iq)
        query = iq.payload
        assert query is not None
        sid = query.attrs.get("sid", "")
        text = query.child_text("activate", ns.BYTESTREAMS)
        if not sid or not text:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "a sid and <activate/> are needed")
        try:
            target = JID.parse(text.strip())
        except InvalidJID as exc:
            raise StanzaError(StanzaCondition.JID_MALFORMED) from exc
        self.ctx.bytestreams.activate(sid, initiator, target)
        return None
