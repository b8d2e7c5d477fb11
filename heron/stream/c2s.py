"""Client-to-server stream negotiation (RFC 6120 §4-§7) and the bound session.

The engine knows nothing of sockets: bytes come in through ``receive`` and leave through the
``Link`` it is given, and the server's services come through ``C2SHost``. Order: stream header
→ STARTTLS (required by default) → SASL → stream restart → resource binding → stanzas.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Callable
from enum import Enum, auto

from heron import ns, timestamps
from heron.jid import JID, InvalidJID, normalize_resource
from heron.stanza import (
    Stanza,
    StanzaCondition,
    StanzaError,
    StreamCondition,
    StreamError,
    error_reply,
    iq_result,
)
from heron.stanza.stanza import KINDS
from heron.stream.base import Link, TlsInfo, XmlStream
from heron.stream.hosts import C2SHost
from heron.stream.sasl import SaslFailure, ScramServer, ht, parse_mechanism, parse_plain, upgrade
from heron.stream.sasl.offer import (
    add_auth_features,
    check_authzid,
    client_mechanisms,
    decode_payload,
)
from heron.stream.sm import HandledTooHigh, StreamManagement
from heron.stream.sm import failed as sm_failed
from heron.xmlstream import (
    STREAM_FOOTER,
    Element,
    StreamOpened,
    serialize,
    stream_header,
)

log = logging.getLogger(__name__)

MAX_SASL_FAILURES = 3


class Framing:
    """How the stream's XML is cut into writes. Over TCP (RFC 6120) it is one long document:
    a header, top-level elements in the header's namespaces, a footer. Other transports
    (RFC 7395 WebSocket, XEP-0206 BOSH) override these; each call is one whole element."""

    def header(self, from_: str | None, stream_id: str) -> str:
        return stream_header(default_ns=ns.CLIENT, from_=from_, to=None, stream_id=stream_id)

    def element(self, element: Element) -> str:
        return serialize(element, ns.CLIENT)

    def footer(self) -> str:
        return STREAM_FOOTER


class State(Enum):
    """Where a client stream stands in negotiation (RFC 6120 §4-§7), then bound."""

    WAIT_HEADER = auto()
    WAIT_TLS = auto()  # features sent, STARTTLS required first
    WAIT_AUTH = auto()
    SASL = auto()
    WAIT_BIND = auto()
    BOUND = auto()
    CLOSED = auto()


class C2SStream(XmlStream):
    """One client connection. Also the core's ``Session`` once bound."""

    kind = "c2s"
    peer_name = "client"

    # One per connection, idle ones included: slots keep each instance small.
    __slots__ = (
        "_available",
        "_hold",
        "_jid",
        "_priority",
        "_sasl",
        "_sasl2",
        "_sasl_failed",
        "_sasl_failures",
        "_sasl_mech",
        "_sasl_ns",
        "_sasl_user",
        "_tasks",
        "_upgrades",
        "domain",
        "framing",
        "hibernating",
        "host",
        "is_authenticated",
        "is_tls",
        "lost",
        "mechanism",
        "preauth_state",
        "presence",
        "sm",
        "started",
        "state",
        "superseded",
        "tls",
        "username",
    )

    def __init__(
        self, host: C2SHost, link: Link, *, is_tls: bool, framing: Framing | None = None
    ) -> None:
        super().__init__(link, host.pre_auth_limits, log)
        self.host = host
        self.framing = framing or Framing()
        self.is_tls = is_tls
        self.tls: TlsInfo | None = None
        self.state = State.WAIT_HEADER
        self.domain = ""
        self.username: str | None = None
        self._jid: JID | None = None
        self._sasl: ScramServer | None = None
        self._sasl_failures = 0
        self._sasl_mech = ""  # the mechanism of the current attempt
        self._sasl_failed: set[tuple[str, str]] | None = None  # (name, mechanism), on failure
        self._sasl_user: str | None = None  # the name the current login attempt gave
        self._sasl_ns = ns.SASL  # ns.SASL2 while an XEP-0388 exchange runs
        self._sasl2: Element | None = None  # that exchange's <authenticate/> (bind, token)
        self._upgrades: list[str] = []  # XEP-0480 tasks asked for in <authenticate/>
        self._tasks: upgrade.UpgradeTasks | None = None  # running before <success/>
        self.preauth_state: dict[str, object] = {}  # kept by pre-login IQs (registration)
        self._hold: Callable[[Element], list[Element]] | None = None
        self.sm: StreamManagement | None = None  # XEP-0198, once enabled
        self.lost = False  # the connection went away (not a clean close): may hibernate
        self.hibernating = False  # resumable and waiting for its client to come back
        self.superseded = False  # another connection resumed this session
        self._available = False
        self._priority = 0
        self.presence: Element | None = None
        self.started = time.monotonic()
        self.is_authenticated = False
        self.mechanism = ""

    # --- Session protocol -------------------------------------------------------------
    @property
    def jid(self) -> JID:
        assert self._jid is not None
        return self._jid

    @property
    def is_bound(self) -> bool:
        return self._jid is not None and self.state is State.BOUND

    @property
    def is_closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def was_bound(self) -> bool:
        """True once a resource was bound, even after the stream closed."""
        return self._jid is not None

    @property
    def is_available(self) -> bool:
        return self._available

    @property
    def priority(self) -> int:
        return self._priority

    def set_presence(self, presence: Element | None) -> None:
        """Record the client's broadcast presence (None: unavailable)."""
        self.presence = presence
        self._available = presence is not None
        self._priority = 0
        if presence is not None:
            text = presence.child_text("priority", ns.CLIENT)
            if text is not None:
                try:
                    self._priority = max(-128, min(127, int(text.strip())))
                except ValueError:
                    self._priority = 0

    def set_hold(self, hold: Callable[[Element], list[Element]] | None) -> None:
        self._hold = hold

    def deliver(self, element: Element) -> None:
        if self.state is State.CLOSED and not self.hibernating:
            return
        if self._hold is not None:
            for now in self._hold(element):
                self._deliver(now)
            return
        self._deliver(element)

    def _deliver(self, element: Element) -> None:
        sm = self.sm
        ask = False
        if sm is not None and element.tag in KINDS:
            ask = sm.sent(element)
            if self.hibernating:
                return  # kept until the client resumes, or handed back when it does not
            if sm.overflowing:
                self.close(StreamError(StreamCondition.RESOURCE_CONSTRAINT, "too many unacked"))
                return
        if self.link.buffered() > self.host.out_queue_bytes:
            # A client that stops reading must not make the server grow without bound.
            self.close(StreamError(StreamCondition.POLICY_VIOLATION, "output queue full"))
            return
        self._send(element)
        if ask:
            self._send(Element("r", ns.SM))

    # --- the stream's end (XmlStream) ---------------------------------------------------
    def _mark_closed(self, *, lost: bool) -> None:
        self.state = State.CLOSED
        self.lost = self.lost or lost  # a lost connection may hibernate (XEP-0198)

    def _before_close(self, error: StreamError | None) -> None:
        if error is not None and self.state is State.WAIT_HEADER:
            self._send_header()

    def _footer(self) -> str:
        return self.framing.footer()

    def timed_out(self) -> None:  # the adapter's deadline for TLS, login and binding passed
        if not self.was_bound:
            self.log.info("login timeout")
            self.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "login took too long"))

    # --- stream header and features ---------------------------------------------------
    def _send(self, element: Element) -> None:
        self.link.write(self.framing.element(element).encode())

    def _send_header(self) -> None:
        self.stream_id = secrets.token_urlsafe(12)
        self._write(self.framing.header(self.domain or None, self.stream_id))

    def _opened(self, event: StreamOpened) -> None:
        to = event.attrs.get("to", "")
        domain = to.lower().rstrip(".")
        known = self.host.is_local_host(domain)
        if self.domain and domain != self.domain:
            known = False  # a restart must not switch hosts
        self.domain = domain if known else self.domain
        self._send_header()
        if event.default_ns != ns.CLIENT:
            raise StreamError(StreamCondition.INVALID_NAMESPACE, "expected jabber:client")
        if not to:
            raise StreamError(StreamCondition.HOST_UNKNOWN, "the stream header has no 'to'")
        if not known:
            raise StreamError(StreamCondition.HOST_UNKNOWN, "this server does not serve that")
        version = event.attrs.get("version", "0.9")
        if not version.startswith("1."):
            raise StreamError(StreamCondition.UNSUPPORTED_VERSION, "XMPP 1.0 is required")
        features = Element("features", ns.STREAM)
        if self.is_authenticated:
            features = self._post_auth_features()
            self.state = State.WAIT_BIND
        elif not self.is_tls and self.host.tls_available(self.domain):
            starttls = features.add("starttls", ns.TLS)
            if self.host.require_tls:
                starttls.add("required", ns.TLS)
                self.state = State.WAIT_TLS
            else:
                self._auth_features(features)
                self.state = State.WAIT_AUTH
        else:
            if not self.is_tls and self.host.require_tls:
                self.close(StreamError(StreamCondition.POLICY_VIOLATION, "TLS is not available"))
                return
            self._auth_features(features)
            self.state = State.WAIT_AUTH
        self._send(features)

    def _post_auth_features(self) -> Element:
        features = Element("features", ns.STREAM)
        if self._jid is None:
            features.add("bind", ns.BIND)
            session = features.add("session", ns.SESSION)
            session.add("optional", ns.SESSION)
        features.add("sm", ns.SM)
        features.children.extend(self.host.stream_features(self.domain, True))
        return features

    def _auth_features(self, features: Element) -> None:
        channel_bindings = self.tls.channel_bindings if self.tls else {}
        add_auth_features(features, channel_bindings, is_tls=self.is_tls)
        features.children.extend(self.host.stream_features(self.domain, False))

    # --- elements ---------------------------------------------------------------------
    async def _element(self, el: Element) -> None:
        state = self.state
        if el.ns == ns.SM and self.is_authenticated:
            self._sm_element(el)
        elif state is State.BOUND:
            await self._stanza(el)
        elif el.ns == ns.TLS and el.tag == "starttls":
            await self._starttls()
        elif el.ns in (ns.SASL, ns.SASL2):
            await self._sasl_element(el)
        elif state is State.WAIT_BIND and el.tag == "iq" and el.ns == ns.CLIENT:
            self._pre_bind_iq(el)
        elif el.tag == "iq" and el.ns == ns.CLIENT and state is State.WAIT_AUTH:
            await self._preauth_iq(el)
        elif state is State.WAIT_TLS:
            raise StreamError(StreamCondition.POLICY_VIOLATION, "STARTTLS is required first")
        else:
            raise StreamError(StreamCondition.NOT_AUTHORIZED, "authenticate first")

    async def _starttls(self) -> None:
        allowed = not self.is_tls and self.state in (State.WAIT_TLS, State.WAIT_AUTH)
        info = await self._proceed_tls(self.domain, allowed=allowed)
        if info is not None:
            self.tls_established(info)
            self.log.info("TLS established (%s)", info.version)
            self.state = State.WAIT_HEADER

    def tls_established(self, info: TlsInfo) -> None:
        """For Direct TLS (XEP-0368): the adapter reports the handshake done at connect."""
        self.tls = info
        self.is_tls = True

    # --- SASL (RFC 6120 §6) -----------------------------------------------------------
    def _sasl_fail(self, condition: str, text: str = "", *, counted: bool = True) -> None:
        failure = Element("failure", self._sasl_ns)
        failure.add(condition, ns.SASL)
        if text:
            failure.add("text", self._sasl_ns, {ns.XML_LANG: "en"}, text)
        self._send(failure)
        self._sasl = None
        self._sasl2 = None
        self._tasks = None
        self.state = State.WAIT_AUTH
        if counted and condition in ("not-authorized", "temporary-auth-failure"):
            self._sasl_failures += 1
            if self._sasl_failures >= MAX_SASL_FAILURES:
                self.close(StreamError(StreamCondition.POLICY_VIOLATION, "too many failures"))

    def _sasl_send(self, tag: str, data: bytes) -> None:
        el = Element(tag, self._sasl_ns)
        el.children.append(base64.b64encode(data).decode() if data else "=")
        self._send(el)

    async def _sasl_element(self, el: Element) -> None:
        if self.state is State.WAIT_TLS or (not self.is_tls and self.host.require_tls):
            self._sasl_fail("encryption-required")
            return
        try:
            if el.tag in ("auth", "authenticate") and self.state is State.WAIT_AUTH:
                self._sasl_ns = el.ns
                self._sasl2 = el if el.tag == "authenticate" and el.ns == ns.SASL2 else None
                if el.ns == ns.SASL2 and el.tag != "authenticate":
                    raise SaslFailure("malformed-request")
                await self._sasl_auth(el)
            elif el.tag == "response" and self.state is State.SASL and self._sasl is not None:
                await self._sasl_response(el)
            elif el.tag in ("next", "task-data") and self._tasks is not None:
                await self._upgrade_step(el)
            elif el.tag == "abort" and self.state in (State.SASL, State.WAIT_AUTH):
                self._sasl_fail("aborted")
            else:
                raise StreamError(StreamCondition.POLICY_VIOLATION, "unexpected SASL element")
        except SaslFailure as exc:
            self.log.info("authentication failed: %s", exc.condition)
            counted = True
            if exc.condition == "not-authorized" and self._sasl_user is not None:
                counted = self._new_failure(self._sasl_user)
                if counted:
                    self.host.auth_result(self.link.peer, self._sasl_user, self.domain, False)
            self._sasl_fail(exc.condition, exc.text, counted=counted)

    def _new_failure(self, username: str) -> bool:
        """Whether a failed attempt counts: a client falling back to its next mechanism
        after a wrong password (slixmpp tries several) is still making its first guess.
        Repeating a mechanism that already failed for that name counts again."""
        failed = self._sasl_failed = self._sasl_failed or set()
        earlier = {mech for name, mech in failed if name == username}
        failed.add((username, self._sasl_mech))
        return not earlier or self._sasl_mech in earlier

    async def _sasl_auth(self, el: Element) -> None:
        self._sasl_user = None
        mechanism = self._sasl_mech = el.attrs.get("mechanism", "")
        bindings = self.tls.channel_bindings if self.tls else {}
        if self._sasl2 is not None:  # refused before any work: tasks or tokens not offered
            self._upgrades = upgrade.requested(self._sasl2)
            ht.token_mechanism(self._sasl2, bindings, mechanism, rotate=False)
            if mechanism in ht.offered(bindings):
                await self._fast_auth(self._sasl2, mechanism, bindings)
                return
        if mechanism not in client_mechanisms(bindings, is_tls=self.is_tls):
            raise SaslFailure("invalid-mechanism")
        if self._sasl2 is not None:
            initial = self._sasl2.find("initial-response", ns.SASL2)
            data = decode_payload(initial) if initial is not None else b""
        else:
            data = decode_payload(el)
        if mechanism == "PLAIN":
            authzid, authcid, password = parse_plain(data)
            await self._throttle(authcid)
            keys, exists = await self.host.keys_for(authcid, self.domain, "SHA-256")
            ok = await self.host.verify_plain(password, keys)
            if not (ok and exists):
                raise SaslFailure("not-authorized")
            check_authzid(authzid, authcid, self.domain)
            self.mechanism = mechanism
            await self._authenticated_async(authcid, b"")
            return
        parsed = parse_mechanism(mechanism)
        if parsed is None:
            raise SaslFailure("invalid-mechanism")
        hash_name, plus = parsed
        cb = bindings
        scram = ScramServer(hash_name, plus=plus, plus_offered=bool(cb), channel_bindings=cb)
        username = scram.start(data)
        await self._throttle(username)
        keys, _exists = await self.host.keys_for(username, self.domain, hash_name)
        challenge = scram.server_first(keys)
        self._sasl = scram
        self.state = State.SASL
        self._sasl_send("challenge", challenge)

    async def _fast_auth(
        self, request: Element, mechanism: str, bindings: dict[str, bytes]
    ) -> None:
        """XEP-0484: one round trip with a token issued earlier for ``mechanism``."""
        cb = ht.cb_data(mechanism, bindings)
        if cb is None:
            raise SaslFailure("invalid-mechanism")
        initial = request.find("initial-response", ns.SASL2)
        asked = ht.parse_request(request, decode_payload(initial) if initial is not None else b"")
        user, agent = asked.authcid, asked.agent
        await self._throttle(user)
        verified = await self.host.fast_verify(user, self.domain, agent, mechanism, asked.proof, cb)
        if verified is None:
            raise SaslFailure("not-authorized")
        responder, expiry = verified
        self.mechanism = mechanism
        # Rotation (XEP-0484 §3.5): a token in the second half of its life is replaced; a
        # client logging out (§3.6) loses its tokens now and gets none unless it asks.
        rotate = expiry - time.time() < self._FAST_ROTATE_S and not asked.invalidate
        if asked.invalidate:
            await self.host.fast_invalidate(user, self.domain, agent)
        await self._authenticated_async(user, responder, rotate=rotate)

    _FAST_ROTATE_S = 7 * 86400

    async def _throttle(self, username: str) -> None:
        """Earlier failures from this address or for this name slow or refuse this one."""
        if not await self.host.auth_attempt(self.link.peer, username, self.domain):
            self.log.info("login refused: address blocked after failed logins")
            raise SaslFailure("temporary-auth-failure", "too many failed logins; try later")
        self._sasl_user = username

    async def _sasl_response(self, el: Element) -> None:
        assert self._sasl is not None
        assert self._sasl_user is not None
        scram = self._sasl
        final = scram.finish(decode_payload(el))
        check_authzid(scram.authzid or "", self._sasl_user, self.domain)
        self._sasl = None
        self.mechanism = scram.mechanism_name
        await self._authenticated_async(self._sasl_user, final)

    async def _upgrade_step(self, el: Element) -> None:
        """XEP-0480 §3.3 for UPGR-SCRAM-*: <next/> gets the salt, <task-data/> the hash."""
        tasks = self._tasks
        assert tasks is not None
        following = await tasks.advance(el, self.domain, self.host.scram_upgrade)
        if following is not None:
            self._send(following)
            return
        self._tasks = None
        await self._authenticated_async(tasks.username, b"", rotate=tasks.rotate)

    async def _authenticated_async(
        self, username: str, final: bytes, *, rotate: bool = False
    ) -> None:
        if self._sasl2 is not None and self._upgrades:
            # XEP-0480: authenticated, but the asked-for upgrades come before <success/>.
            tasks, self._upgrades = self._upgrades, []
            self._tasks = upgrade.UpgradeTasks(tasks, username, rotate, self.host.scram_iterations)
            self.state = State.SASL
            self._send(upgrade.continue_with(tasks[0], final))
            return
        self.host.auth_result(self.link.peer, username, self.domain, True)
        self.username = JID.make(username, self.domain).local
        self.is_authenticated = True
        self.log.info("authenticated as %s@%s (%s)", self.username, self.domain, self.mechanism)
        self.parser.set_limits(self.host.limits)
        request, self._sasl2 = self._sasl2, None
        if request is None:
            self._sasl_send("success", final)
            self.parser.reset()
            self.state = State.WAIT_HEADER
            return
        # XEP-0388: no stream restart; inline Bind2 and FAST, then the new features.
        success = Element("success", ns.SASL2)
        if final:
            success.add("additional-data", ns.SASL2, text=base64.b64encode(final).decode())
        self.state = State.WAIT_BIND
        bind = request.find("bind", ns.BIND2)
        resume = request.find("resume", ns.SM)  # XEP-0198 inline: resumed, no new binding
        sm_answer = self._sm_take_over(resume) if resume is not None else None
        resumed = sm_answer is not None and sm_answer.tag == "resumed"
        bind = None if resumed else bind
        if bind is not None:
            tag = bind.child_text("tag", ns.BIND2) or "heron"
            self._bind_resource(f"{tag[:32]}.{secrets.token_hex(4)}")
        identity = str(self._jid) if self._jid is not None else f"{self.username}@{self.domain}"
        success.add("authorization-identifier", ns.SASL2, text=identity)
        if bind is not None:
            success.add("bound", ns.BIND2)
        if sm_answer is not None:
            success.children.append(sm_answer)
        agent = request.find("user-agent", ns.SASL2)
        agent_id = agent.attrs.get("id", "") if agent is not None else ""
        bindings = self.tls.channel_bindings if self.tls else {}
        mech = ht.token_mechanism(request, bindings, self.mechanism, rotate=rotate)
        if agent_id and mech is not None:  # XEP-0484 §3.2, §3.5
            assert self.username is not None
            token, expiry = await self.host.fast_issue(self.username, self.domain, agent_id, mech)
            stamp = timestamps.stamp(expiry)
            success.add("token", ns.FAST, {"token": token, "expiry": stamp})
        self._send(success)
        self._send(self._post_auth_features())
        if resumed:
            self._sm_resend()

    # --- before login: registration ---------------------------------------------------
    async def _preauth_iq(self, el: Element) -> None:
        if not self.is_tls and self.host.require_tls:
            raise StreamError(StreamCondition.POLICY_VIOLATION, "STARTTLS is required first")
        stanza = Stanza(el, JID(None, self.domain, None), None)
        try:
            result = await self.host.preauth_iq(
                self.domain, stanza, self.link.peer, self.preauth_state
            )
            reply = iq_result(stanza, result)
        except StanzaError as err:
            reply = error_reply(el, err)
        reply.attrs.pop("from", None)
        self._send(reply)

    # --- resource binding (RFC 6120 §7) -----------------------------------------------
    def _pre_bind_iq(self, el: Element) -> None:
        payload = el.first()
        if el.attrs.get("type") == "set" and payload is not None and payload.ns == ns.BIND:
            self._bind(el, payload)
        elif payload is not None and payload.ns == ns.SESSION:
            self._send(_result(el))
        elif el.attrs.get("type") in ("get", "set"):
            err = StanzaError(StanzaCondition.NOT_AUTHORIZED, "bind a resource first")
            self._send(error_reply(el, err))

    def _bind(self, el: Element, payload: Element) -> None:
        assert self.username is not None
        requested = payload.child_text("resource", ns.BIND)
        try:
            resource = normalize_resource(requested.strip()) if requested else None
        except InvalidJID:
            err = StanzaError(StanzaCondition.BAD_REQUEST, "invalid resource")
            self._send(error_reply(el, err))
            return
        if not resource:
            resource = "heron-" + secrets.token_hex(6)
        self._bind_resource(resource)
        reply = _result(el)
        bind = reply.add("bind", ns.BIND)
        bind.add("jid", ns.BIND, text=str(self._jid))
        self._send(reply)
        self.log.info("bound %s", self._jid)

    # --- stream management (XEP-0198) -----------------------------------------------
    def _sm_element(self, el: Element) -> None:
        tag, sm = el.tag, self.sm
        if tag == "enable":
            if self.state is not State.BOUND or sm is not None:
                self._send(sm_failed("unexpected-request"))
                return
            sm = self.sm = StreamManagement(el.attrs.get("resume") in ("true", "1"))
            enabled = Element("enabled", ns.SM, {"id": sm.id})
            if sm.resumable:
                enabled.attrs["resume"] = "true"
                enabled.attrs["max"] = str(int(self.host.sm_resume_timeout_s))
                self.host.sm_enabled(self)
            self._send(enabled)
        elif tag == "r" and sm is not None:
            self._send(Element("a", ns.SM, {"h": str(sm.handled)}))
        elif tag == "a" and sm is not None:
            sm.acknowledge_element(el)
        elif tag == "resume":
            self._sm_resume(el)
        elif tag in ("r", "a"):
            raise StreamError(StreamCondition.UNSUPPORTED_STANZA_TYPE, "enable first")

    def _sm_resume(self, el: Element) -> None:
        """§5: take over a previous session of this account, resending what it missed."""
        if self.state is not State.WAIT_BIND:
            self._send(sm_failed("unexpected-request"))
            return
        answer = self._sm_take_over(el)
        self._send(answer)
        if answer.tag == "resumed":
            self._sm_resend()

    def _sm_take_over(self, el: Element) -> Element:
        """<resumed/> once this stream has taken over session ``previd``, else <failed/>;
        also inline in a SASL2 <authenticate/> (XEP-0198 with XEP-0388)."""
        old = self.host.sm_find(self, el.attrs.get("previd", ""))
        if old is None or old.sm is None:
            return sm_failed("item-not-found")
        sm = old.sm
        try:
            sm.acknowledge(int(el.attrs.get("h", "")))
        except (ValueError, HandledTooHigh):
            return sm_failed("unexpected-request")
        self._jid = old._jid
        self._available, self._priority, self.presence = old._available, old._priority, old.presence
        self._hold = old._hold
        self.sm = sm
        self.state = State.BOUND
        self.host.sm_takeover(old, self)
        return Element("resumed", ns.SM, {"previd": sm.id, "h": str(sm.handled)})

    def _sm_resend(self) -> None:
        assert self.sm is not None
        for stanza in list(self.sm.unacked):  # still unacknowledged: sent again, until acked
            self._send(stanza)
        self.log.info("resumed %s (%d stanzas sent again)", self._jid, len(self.sm.unacked))

    def _bind_resource(self, resource: str) -> None:
        assert self.username is not None
        try:
            resource = normalize_resource(resource)
        except InvalidJID:
            resource = "heron-" + secrets.token_hex(6)
        self._jid = JID(self.username, self.domain, resource)
        self.state = State.BOUND
        self.host.bind(self)

    # --- stanzas ----------------------------------------------------------------------
    async def _stanza(self, el: Element) -> None:
        if el.ns not in (ns.CLIENT, ns.STREAM) and await self.host.nonza(self, el):
            return  # a top-level element a module handles (XEP-0352 <active/>, ...)
        if self.sm is not None and el.tag in KINDS:
            self.sm.received()
        if el.tag not in KINDS or el.ns != ns.CLIENT:
            if el.tag in KINDS or el.ns == ns.CLIENT:
                raise StreamError(StreamCondition.UNSUPPORTED_STANZA_TYPE, el.tag)
            raise StreamError(StreamCondition.INVALID_NAMESPACE, el.ns)
        jid = self.jid
        claimed = el.attrs.get("from")
        if claimed is not None and claimed not in (str(jid), str(jid.bare)):
            # RFC 6120 §8.1.2.1: a client may not claim another address.
            try:
                claimed_jid = JID.parse(claimed)
            except InvalidJID:
                claimed_jid = None
            if claimed_jid not in (jid, jid.bare):
                raise StreamError(StreamCondition.INVALID_FROM, "not your address")
        el.attrs["from"] = str(jid)
        to: JID | None = None
        raw_to = el.attrs.get("to")
        if raw_to is not None:
            try:
                to = JID.parse(raw_to)
            except InvalidJID:
                if el.attrs.get("type") != "error":
                    reply = error_reply(el, StanzaError(StanzaCondition.JID_MALFORMED))
                    reply.set("from", JID.salvage(raw_to))  # which room refused the nick
                    self.deliver(reply)
                return
        if el.tag == "iq" and "id" not in el.attrs:
            raise StreamError(StreamCondition.INVALID_XML, "an IQ needs an id")
        if el.tag == "iq" and el.attrs.get("type") == "set" and (to is None or to.bare == to):
            payload = el.first()
            if payload is not None and payload.ns == ns.SESSION and payload.tag == "session":
                # RFC 3921 §3 session establishment, kept as a no-op for old clients
                # (RFC 6121 Appendix E; advertised as optional).
                self.deliver(_result(el))
                return
        await self.host.stanza(self, Stanza(el, to, jid))


def _result(iq: Element) -> Element:
    reply = Element("iq", ns.CLIENT, {"type": "result"})
    if "id" in iq.attrs:
        reply.attrs["id"] = iq.attrs["id"]
    return reply
