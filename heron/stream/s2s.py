"""Server-to-server streams (RFC 6120 §4-§6 for servers, XEP-0220 dialback, XEP-0178).

Two engines on the same ``Link`` interface as client streams:

- ``S2SIncoming``: a peer connected to us. STARTTLS is required; then the peer proves the
  domain it speaks for with SASL EXTERNAL (its certificate, when the host trusts it) or with
  dialback, which the host checks by asking the peer domain's authoritative server. Several
  domains may be authenticated on one stream; each stanza's ``from`` domain must be one of
  them and its ``to`` domain ours, or the stream ends with ``invalid-from``/``host-unknown``.
  The engine also answers ``db:verify`` questions about keys this server issued.
- ``S2SOutgoing``: we connected to a peer, for one local domain. It negotiates TLS, then
  EXTERNAL when offered and possible, else dialback; ``ready`` completes once stanzas may
  flow. It also carries our ``db:verify`` questions to that peer.

Both directions speak XEP-0288 (bidirectional streams): once TLS is up, the connecting side
asks with ``<bidi/>``; then the receiving side may send, over the same connection, stanzas
for the inverse of each domain pair the connecting side authenticated, so two servers need
one TCP connection instead of two.

Stanzas are kept in ``jabber:client`` inside the server and moved to ``jabber:server`` on
the wire, both ways.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets

from heron import ns
from heron.jid import JID, InvalidJID
from heron.stanza import Stanza, StreamCondition, StreamError
from heron.stanza.stanza import KINDS
from heron.stream.base import Link, Phase, TlsInfo, XmlStream
from heron.stream.hosts import S2SHost
from heron.stream.sasl import SaslFailure
from heron.stream.sasl.offer import decode_payload
from heron.xmlstream import (
    Element,
    Limits,
    StreamOpened,
    serialize,
    stream_header,
)

log = logging.getLogger(__name__)


class ExternalRefused(ConnectionError):
    """The peer refused SASL EXTERNAL with our certificate; dialback may still work."""


PREFIXES = {"db": ns.DIALBACK}
# COMPAT: ejabberd 23.01 (its XML codec matches dialback elements by the literal name
# "db:result"/"db:verify") ignores <result xmlns='jabber:server:dialback'/>, which is the same
# XML. So dialback elements go out with the db: prefix the stream header declares, as in
# every example of XEP-0220.
DIALBACK_PREFIX = {ns.DIALBACK: "db"}


def _domain_of(value: str | None) -> str | None:
    """The domain of any JID, or None."""
    try:
        return JID.parse(value).domain if value else None
    except InvalidJID:
        return None


def _domain(value: str | None) -> str | None:
    if not value:
        return None
    try:
        jid = JID.parse(value)
    except InvalidJID:
        return None
    return jid.domain if jid.local is None and jid.resource is None else None


class _Stream(XmlStream):
    """What both directions share: the phase and the wire namespaces."""

    kind = "s2s"

    def __init__(self, link: Link, limits: Limits) -> None:
        super().__init__(link, limits, log)
        self.phase = Phase.WAIT_HEADER
        self.tls: TlsInfo | None = None

    @property
    def is_closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def _mark_closed(self, *, lost: bool) -> None:
        self.phase = Phase.CLOSED

    def _send(self, el: Element) -> None:
        self._write(serialize(el, ns.SERVER, DIALBACK_PREFIX))

    def _addresses(self, el: Element, pairs: set[tuple[str, str]]) -> Stanza:
        """The stanza, in jabber:client, if its (from, to) domains are an authenticated pair
        of ``pairs`` (RFC 6120 §4.9.3.9); else the stream error."""
        try:
            sender = JID.parse(el.attrs.get("from") or "")
            recipient = JID.parse(el.attrs.get("to") or "")
        except InvalidJID as exc:
            raise StreamError(StreamCondition.IMPROPER_ADDRESSING, "bad from or to") from exc
        if not self.host_serves(recipient.domain):
            raise StreamError(
                StreamCondition.HOST_UNKNOWN, f"{recipient.domain} is not served here"
            )
        if (sender.domain, recipient.domain) not in pairs:
            raise StreamError(StreamCondition.INVALID_FROM, f"{sender.domain} is not authenticated")
        return Stanza(el.renamespaced(ns.SERVER, ns.CLIENT), recipient, sender)

    def host_serves(self, domain: str) -> bool:
        raise NotImplementedError


class S2SIncoming(_Stream):
    """A stream a peer server opened to us."""

    def __init__(self, host: S2SHost, link: Link, *, is_tls: bool = False) -> None:
        super().__init__(link, host.limits)
        self.host = host
        self.is_tls = is_tls
        self.local = ""  # our domain the peer addressed
        self.claimed = ""  # the 'from' of the peer's header, if any
        self.authenticated: set[tuple[str, str]] = set()  # (remote, local) pairs
        self.tasks: set[asyncio.Task[None]] = set()
        self.bidi = False  # XEP-0288: the peer asked; we may send on this stream
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready.set_result(None)  # as a route (XEP-0288), usable once adopted

    can_verify = False  # XEP-0288 §2.2: never verify a key on the stream that brought it

    def host_serves(self, domain: str) -> bool:
        return self.host.serves_domain(domain)

    # --- header and features --------------------------------------------------------
    def _opened(self, event: StreamOpened) -> None:
        to = _domain(event.attrs.get("to")) or ""
        self.claimed = _domain(event.attrs.get("from")) or ""
        known = self.host.serves_domain(to)
        self.local = to if known else self.local
        self.stream_id = secrets.token_urlsafe(16)
        self._write(
            stream_header(
                default_ns=ns.SERVER,
                from_=self.local or None,
                to=self.claimed or None,
                stream_id=self.stream_id,
                prefixes=PREFIXES,
            )
        )
        if event.default_ns != ns.SERVER:
            raise StreamError(StreamCondition.INVALID_NAMESPACE, "expected jabber:server")
        if not known:
            raise StreamError(StreamCondition.HOST_UNKNOWN, "this server does not serve that")
        if not event.attrs.get("version", "").startswith("1."):
            raise StreamError(StreamCondition.UNSUPPORTED_VERSION, "XMPP 1.0 is required")
        features = Element("features", ns.STREAM)
        if not self.is_tls:
            features.add("starttls", ns.TLS).add("required", ns.TLS)
            self.phase = Phase.WAIT_TLS
        else:
            if not self.authenticated and self.host.peer_certificate_names(self):
                features.add("mechanisms", ns.SASL).add("mechanism", ns.SASL, text="EXTERNAL")
            features.add("dialback", ns.DIALBACK_FEATURE).add("errors", ns.DIALBACK_FEATURE)
            self.phase = Phase.OPEN
        if self.host.offers_bidi():  # XEP-0288 §2.1: before and after TLS
            features.add("bidi", ns.BIDI_FEATURE)
        self._send(features)

    # --- elements -------------------------------------------------------------------
    async def _element(self, el: Element) -> None:
        if el.ns == ns.TLS and el.tag == "starttls":
            await self._starttls()
        elif self.phase is not Phase.OPEN:
            raise StreamError(StreamCondition.POLICY_VIOLATION, "STARTTLS is required first")
        elif el.ns == ns.SASL:
            self._sasl(el)
        elif el.ns == ns.BIDI and el.tag == "bidi" and self.host.offers_bidi():
            # XEP-0288 §2.1: only once TLS is up (OPEN implies it on this engine).
            self.bidi = True
        elif el.ns == ns.DIALBACK and el.tag == "result":
            self._dialback_result(el)
        elif el.ns == ns.DIALBACK and el.tag == "verify":
            self._dialback_verify(el)
        elif el.ns == ns.SERVER and el.tag in KINDS:
            await self._stanza(el)
        else:
            raise StreamError(StreamCondition.UNSUPPORTED_STANZA_TYPE, el.tag)

    async def _starttls(self) -> None:
        allowed = not self.is_tls and self.phase is Phase.WAIT_TLS
        info = await self._proceed_tls(self.local, allowed=allowed)
        if info is not None:
            self.tls, self.is_tls, self.phase = info, True, Phase.WAIT_HEADER

    def _sasl(self, el: Element) -> None:
        """XEP-0178: EXTERNAL with the certificate TLS verified."""
        if el.tag != "auth" or el.attrs.get("mechanism") != "EXTERNAL":
            self._sasl_failure("invalid-mechanism")
            return
        try:
            authzid = decode_payload(el).decode()
        except (SaslFailure, UnicodeDecodeError):
            self._sasl_failure("incorrect-encoding")
            return
        domain = _domain(authzid) if authzid else self.claimed
        if not domain or not self.host.certificate_matches(self, domain):
            self.log.info("s2s EXTERNAL refused for %s", domain or "(no domain)")
            self._sasl_failure("not-authorized")
            return
        self._authenticated(domain, self.local)
        self.log.info("s2s peer %s authenticated by certificate", domain)
        self._send(Element("success", ns.SASL))
        self.parser.reset()
        self.phase = Phase.WAIT_HEADER

    def _authenticated(self, remote: str, local: str) -> None:
        self.authenticated.add((remote, local))
        if self.bidi:
            # XEP-0288 §2.2: the inverse pair may now flow on this stream.
            self.host.adopt_route(local, remote, self)

    def send(self, el: Element) -> None:
        """XEP-0288: a stanza (jabber:client) from one of our domains to a peer domain
        authenticated on this bidirectional stream; anything else is dropped (§2.2's MUSTs:
        nothing before authentication, only the inverse of authenticated pairs)."""
        sender, recipient = _domain_of(el.attrs.get("from")), _domain_of(el.attrs.get("to"))
        if self.is_closed or not self.bidi or (recipient, sender) not in self.authenticated:
            self.log.warning("s2s: not sending %s -> %s on this stream", sender, recipient)
            return
        self._send(el.renamespaced(ns.CLIENT, ns.SERVER))

    async def verify(self, originating: str, stream_id: str, key: str) -> bool:
        return False  # can_verify is False: the manager asks on a stream of its own

    def _sasl_failure(self, condition: str) -> None:
        failure = Element("failure", ns.SASL)
        failure.add(condition, ns.SASL)
        self._send(failure)

    def _dialback_result(self, el: Element) -> None:
        """XEP-0220 §2.1: the peer claims a domain; ask that domain's server (not blocking
        this stream: answers to our own questions may be waiting behind it)."""
        remote, local = _domain(el.attrs.get("from")), _domain(el.attrs.get("to"))
        if remote is None or local is None or el.attrs.get("type"):
            raise StreamError(StreamCondition.IMPROPER_ADDRESSING, "db:result needs from and to")
        if not self.host.serves_domain(local):
            self._dialback_answer(local, remote, "error", "item-not-found")
            return
        if not self.host.dialback_allowed(remote):
            self._dialback_answer(local, remote, "error", "not-allowed")
            return
        key = el.text.strip()
        task = asyncio.ensure_future(self._check_dialback(remote, local, key))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _check_dialback(self, remote: str, local: str, key: str) -> None:
        try:
            valid = await self.host.verify_dialback(local, remote, self.stream_id, key)
        except Exception:
            self.log.exception("dialback verification for %s failed", remote)
            valid = False
        if self.is_closed:
            return
        if valid:
            self.log.info("s2s peer %s authenticated by dialback", remote)
            self._dialback_answer(local, remote, "valid")
            self._authenticated(remote, local)
        else:
            self.log.info("s2s peer %s failed dialback", remote)
            self._dialback_answer(local, remote, "invalid")

    def _dialback_answer(self, local: str, remote: str, type_: str, error: str = "") -> None:
        answer = Element("result", ns.DIALBACK, {"from": local, "to": remote, "type": type_})
        if error:
            answer.add("error", ns.SERVER, {"type": "cancel"}).add(error, ns.STANZAS_ERRORS)
        self._send(answer)

    def _dialback_verify(self, el: Element) -> None:
        """XEP-0220 §2.4: we are the authoritative server; was this key ours?"""
        receiving, originating = _domain(el.attrs.get("from")), _domain(el.attrs.get("to"))
        stream_id = el.attrs.get("id", "")
        if receiving is None or originating is None or not stream_id:
            raise StreamError(StreamCondition.IMPROPER_ADDRESSING, "db:verify needs from, to, id")
        answer = Element("verify", ns.DIALBACK, {"from": originating, "to": receiving})
        answer.attrs["id"] = stream_id
        if not self.host.serves_domain(originating):
            answer.attrs["type"] = "invalid"
        else:
            expected = self.host.dialback_key(receiving, originating, stream_id)
            valid = secrets.compare_digest(expected.encode(), el.text.strip().encode())
            answer.attrs["type"] = "valid" if valid else "invalid"
        self._send(answer)

    async def _stanza(self, el: Element) -> None:
        await self.host.remote_stanza(self._addresses(el, self.authenticated))


class S2SOutgoing(_Stream):
    """A stream we opened to a peer server, for one of our domains."""

    def __init__(
        self,
        host: S2SHost,
        link: Link,
        local: str,
        remote: str,
        *,
        use_external: bool,
        is_tls: bool = False,
    ) -> None:
        super().__init__(link, host.limits)
        self.host = host
        self.local = local
        self.remote = remote
        self.is_tls = is_tls
        self.use_external = use_external
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.secured: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._verifies: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._external_tried = False
        self.external_refused = False  # the peer said no to our certificate
        self.method = ""  # how we authenticated: "EXTERNAL" or "dialback"
        self.bidi = False  # XEP-0288: we asked; the peer may send to us on this stream

    can_verify = True

    def host_serves(self, domain: str) -> bool:
        return domain == self.local

    def start(self) -> None:
        self._write(
            stream_header(
                default_ns=ns.SERVER,
                from_=self.local,
                to=self.remote,
                stream_id=None,
                prefixes=PREFIXES,
            )
        )

    def _mark_closed(self, *, lost: bool) -> None:
        super()._mark_closed(lost=lost)
        self._fail(ConnectionError(self.close_reason or "stream closed"))

    def _fail(self, exc: Exception) -> None:
        for waiting in (self.ready, self.secured):
            if not waiting.done():
                waiting.set_exception(exc)
                waiting.exception()  # retrieved: nobody may be waiting on it
        for answer in self._verifies.values():
            if not answer.done():
                answer.set_result(False)
        self._verifies.clear()

    # --- what the core calls ----------------------------------------------------------
    def send(self, el: Element) -> None:
        """A stanza (in jabber:client) for the peer; only once ``ready``."""
        if not self.is_closed:
            self._send(el.renamespaced(ns.CLIENT, ns.SERVER))

    async def verify(self, originating: str, stream_id: str, key: str) -> bool:
        """XEP-0220 §2.3: ask the peer (authoritative for ``originating``) about a key."""
        await self.secured
        future = self._verifies.get((originating, stream_id))
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._verifies[(originating, stream_id)] = future
            request = Element(
                "verify",
                ns.DIALBACK,
                {"from": self.local, "to": originating, "id": stream_id},
                [key],
            )
            self._send(request)
        return await future

    # --- negotiation ------------------------------------------------------------------
    def _opened(self, event: StreamOpened) -> None:
        if event.default_ns != ns.SERVER:
            raise StreamError(StreamCondition.INVALID_NAMESPACE, "expected jabber:server")
        self.stream_id = event.attrs.get("id", "")
        self.phase = Phase.OPEN

    async def _element(self, el: Element) -> None:
        if el.ns == ns.STREAM and el.tag == "features":
            await self._features(el)
        elif el.ns == ns.TLS and el.tag == "proceed":
            self.tls = await self.link.start_tls(self.remote)
            self.is_tls = True
            self.parser.reset()
            self.start()
        elif el.ns == ns.TLS:
            self.close_reason = "the peer refused TLS"
            self.close()
        elif el.ns == ns.SASL:
            self._sasl_answer(el)
        elif el.ns == ns.DIALBACK and el.tag == "result":
            self._dialback_result(el)
        elif el.ns == ns.DIALBACK and el.tag == "verify":
            self._verify_answer(el)
        elif el.ns == ns.SERVER and el.tag in KINDS:
            # XEP-0288 §2.2: with bidi, the peer sends for the inverse of our pair once we are
            # authenticated; without it, stanzas come on the peer's own stream.
            if not self.bidi:
                raise StreamError(StreamCondition.UNSUPPORTED_STANZA_TYPE, "not on this stream")
            pairs = {(self.remote, self.local)} if self.method else set()
            await self.host.remote_stanza(self._addresses(el, pairs))
        else:
            raise StreamError(StreamCondition.UNSUPPORTED_STANZA_TYPE, el.tag)

    async def _features(self, features: Element) -> None:
        if self.ready.done():
            return  # after EXTERNAL's restart: nothing more to negotiate
        if not self.is_tls:
            if features.find("starttls", ns.TLS) is None:
                self.close(StreamError(StreamCondition.POLICY_VIOLATION, "TLS is required"))
                return
            self._send(Element("starttls", ns.TLS))
            return
        if not self.secured.done():
            self.secured.set_result(None)
        if (
            not self.bidi
            and features.find("bidi", ns.BIDI_FEATURE) is not None
            and self.host.offers_bidi()
        ):
            # XEP-0288 §2.2: asked after TLS, before SASL or dialback.
            self.bidi = True
            self._send(Element("bidi", ns.BIDI))
        mechanisms = features.find("mechanisms", ns.SASL)
        offered = (
            {m.text for m in mechanisms.find_all("mechanism", ns.SASL)} if mechanisms else set()
        )
        if self.use_external and "EXTERNAL" in offered and not self._external_tried:
            self._external_tried = True
            auth = Element("auth", ns.SASL, {"mechanism": "EXTERNAL"})
            auth.children.append(base64.b64encode(self.local.encode()).decode())
            self._send(auth)
            return
        self._start_dialback()

    def _start_dialback(self) -> None:
        key = self.host.dialback_key(self.remote, self.local, self.stream_id)
        self._send(Element("result", ns.DIALBACK, {"from": self.local, "to": self.remote}, [key]))

    def _sasl_answer(self, el: Element) -> None:
        if el.tag == "success":
            self.method = "EXTERNAL"
            self.log.info("s2s to %s authenticated by certificate", self.remote)
            if not self.ready.done():
                self.ready.set_result(None)
            self.parser.reset()
            self.start()
        else:
            # Some peers (ejabberd 23.01) ignore dialback on a stream whose EXTERNAL failed:
            # end this stream; the next one to this peer goes straight to dialback.
            self.log.info("s2s EXTERNAL to %s refused; reconnecting for dialback", self.remote)
            self.external_refused = True
            self.close_reason = "EXTERNAL refused"
            self._fail(ExternalRefused(f"{self.remote} refused our certificate"))
            self.close()

    def _dialback_result(self, el: Element) -> None:
        type_ = el.attrs.get("type")
        if type_ is None and self.bidi:
            # XEP-0288 §2.2 lets the peer ask for more pairs on a bidirectional stream; we
            # do not take such requests, and say so with a dialback error (XEP-0220 §2.4).
            answer = Element("result", ns.DIALBACK, {"type": "error"})
            answer.attrs |= {"from": el.attrs.get("to", ""), "to": el.attrs.get("from", "")}
            answer.add("error", ns.SERVER, {"type": "cancel"}).add(
                "feature-not-implemented", ns.STANZAS_ERRORS
            )
            self._send(answer)
            return
        if el.attrs.get("from") != self.remote or el.attrs.get("to") != self.local:
            return
        if self.method == "EXTERNAL":
            return  # XEP-0288 §4: a 'valid' we never asked for proves nothing
        if type_ == "valid":
            self.method = "dialback"
            self.log.info("s2s to %s authenticated by dialback", self.remote)
            if not self.ready.done():
                self.ready.set_result(None)
        else:
            self.close_reason = f"dialback {el.attrs.get('type', 'refused')}"
            self.close()

    def _verify_answer(self, el: Element) -> None:
        key = (el.attrs.get("from", ""), el.attrs.get("id", ""))
        future = self._verifies.pop(key, None)
        if future is not None and not future.done():
            future.set_result(el.attrs.get("type") == "valid")
