"""XEP-0114: Jabber Component Protocol, the server's side (``jabber:component:accept``).

A component (a gateway, a bot) connects, names the domain it wants to serve in the stream
header's ``to`` and proves it knows that domain's shared secret with
``<handshake>hex(SHA-1(stream id + secret))</handshake>`` (XEP-0114 §3). After the server's
empty ``<handshake/>`` it exchanges stanzas like a server would over s2s: each stanza names
its ``from`` (an address at the component's domain) and its ``to``.

Errors, all stream errors that end only this stream: a wrong namespace is
``invalid-namespace``, a domain that is not configured ``host-unknown``, a wrong or repeated
handshake ``not-authorized``, a domain already served by another connection ``conflict``
(unless the configuration lets the newer one replace it), a ``from`` outside the domain
``invalid-from``, a stanza without ``to`` ``improper-addressing``.

Stanzas are kept in ``jabber:client`` inside the server and are in ``jabber:component:accept``
on the wire, both ways.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from heron import ns
from heron.jid import JID, InvalidJID
from heron.stanza import StanzaCondition, StanzaError, StreamCondition, StreamError, error_reply
from heron.stanza.stanza import KINDS, Stanza
from heron.stream.base import Link, Phase, XmlStream
from heron.stream.hosts import ComponentHost
from heron.xmlstream import (
    Element,
    StreamOpened,
    serialize,
    stream_header,
)

log = logging.getLogger(__name__)


def handshake_digest(stream_id: str, secret: str) -> str:
    """XEP-0114 §3: the lowercase hex SHA-1 of the stream id followed by the secret."""
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()  # noqa: S324 (the XEP's hash)


class ComponentStream(XmlStream):
    """One component connection: negotiation, then the route to its domain."""

    kind = "component"
    peer_name = "the component"

    def __init__(self, host: ComponentHost, link: Link) -> None:
        super().__init__(link, host.pre_auth_limits, log)
        self.host = host
        self.phase = Phase.WAIT_HEADER
        self.domain = ""

    @property
    def is_closed(self) -> bool:
        return self.phase is Phase.CLOSED

    @property
    def is_authenticated(self) -> bool:
        return self.phase is Phase.OPEN

    # --- output -----------------------------------------------------------------------
    def _send(self, el: Element) -> None:
        self._write(serialize(el, ns.COMPONENT))

    def deliver(self, element: Element) -> None:
        """A stanza (in jabber:client) for the component; a stuck reader is cut off."""
        if self.phase is not Phase.OPEN:
            return
        if self.link.buffered() > self.host.out_queue_bytes:
            self.close(StreamError(StreamCondition.POLICY_VIOLATION, "output queue full"))
            return
        self._send(element.renamespaced(ns.CLIENT, ns.COMPONENT))

    def _before_close(self, error: StreamError | None) -> None:
        if self.phase is Phase.WAIT_HEADER:
            self._header()

    def _mark_closed(self, *, lost: bool) -> None:
        was_open = self.phase is Phase.OPEN
        self.phase = Phase.CLOSED
        if was_open:
            self.host.component_ended(self)

    def timed_out(self) -> None:
        """The adapter's deadline for the handshake passed."""
        if self.phase in (Phase.WAIT_HEADER, Phase.WAIT_HANDSHAKE):
            self.close_reason = "no handshake in time"
            self.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "handshake took too long"))

    # --- input ------------------------------------------------------------------------
    def _header(self) -> None:
        self.stream_id = secrets.token_hex(16)
        self._write(
            stream_header(
                default_ns=ns.COMPONENT,
                from_=self.domain or None,
                to=None,
                stream_id=self.stream_id,
                version=None,
                lang=None,
            )
        )

    def _opened(self, event: StreamOpened) -> None:
        if self.phase is not Phase.WAIT_HEADER:
            raise StreamError(StreamCondition.INVALID_XML, "a second stream header")
        to = event.attrs.get("to", "").lower().rstrip(".")
        known = bool(to) and self.host.component_secret(to) is not None
        self.domain = to if known else ""
        self._header()
        self.phase = Phase.WAIT_HANDSHAKE
        if event.default_ns != ns.COMPONENT:
            raise StreamError(StreamCondition.INVALID_NAMESPACE, "expected " + ns.COMPONENT)
        if not known:
            raise StreamError(StreamCondition.HOST_UNKNOWN, "no component is configured for that")

    async def _element(self, el: Element) -> None:
        if el.tag == "handshake" and el.ns == ns.COMPONENT:
            self._handshake(el)
        elif self.phase is not Phase.OPEN:
            raise StreamError(StreamCondition.NOT_AUTHORIZED, "handshake first")
        elif el.tag in KINDS and el.ns == ns.COMPONENT:
            await self._stanza(el)
        elif el.tag in KINDS or el.ns == ns.COMPONENT:
            raise StreamError(StreamCondition.UNSUPPORTED_STANZA_TYPE, el.tag)
        else:
            raise StreamError(StreamCondition.INVALID_NAMESPACE, el.ns)

    def _handshake(self, el: Element) -> None:
        if self.phase is not Phase.WAIT_HANDSHAKE:
            raise StreamError(StreamCondition.NOT_AUTHORIZED, "already authenticated")
        secret = self.host.component_secret(self.domain)
        given = el.text.strip().lower()
        expected = handshake_digest(self.stream_id, secret) if secret is not None else ""
        if secret is None or not hmac.compare_digest(expected.encode(), given.encode()):
            self.log.info("component handshake for %s refused", self.domain)
            self.close_reason = "bad handshake"
            raise StreamError(StreamCondition.NOT_AUTHORIZED, "wrong handshake")
        self.host.component_connected(self)  # may raise conflict
        self.phase = Phase.OPEN
        self.parser.set_limits(self.host.limits)
        self.log.info("component %s connected", self.domain)
        self._send(Element("handshake", ns.COMPONENT))

    async def _stanza(self, el: Element) -> None:
        try:
            sender = JID.parse(el.attrs.get("from", ""))
        except InvalidJID as exc:
            raise StreamError(StreamCondition.IMPROPER_ADDRESSING, "a stanza needs a from") from exc
        if sender.domain != self.domain:
            # XEP-0114 §3: a component speaks only for its own domain.
            raise StreamError(StreamCondition.INVALID_FROM, f"{sender.domain} is not yours")
        raw_to = el.attrs.get("to")
        if not raw_to:
            raise StreamError(StreamCondition.IMPROPER_ADDRESSING, "a stanza needs a to")
        element = el.renamespaced(ns.COMPONENT, ns.CLIENT)
        try:
            recipient = JID.parse(raw_to)
        except InvalidJID:
            if element.attrs.get("type") != "error":
                self.deliver(error_reply(element, StanzaError(StanzaCondition.JID_MALFORMED)))
            return
        if el.tag == "iq" and "id" not in el.attrs:
            raise StreamError(StreamCondition.INVALID_XML, "an IQ needs an id")
        await self.host.component_stanza(self, Stanza(element, recipient, sender))
