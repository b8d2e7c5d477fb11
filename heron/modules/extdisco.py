"""XEP-0215: External Service Discovery, for the STUN and TURN servers calls need.

The host's users ask their server (``<services xmlns='urn:xmpp:extdisco:2'/>``, optionally
with a ``type``) and get the configured services. With a ``secret`` shared with the TURN
server (coturn's ``use-auth-secret`` and ``static-auth-secret``), every answer carries
fresh time-limited credentials for each TURN service, as the TURN REST API draft describes:
the username is ``"<expiry as Unix time>:<the user's bare JID>"`` and the password
``base64(HMAC-SHA1(secret, username))``, with the expiry in ``expires`` (XEP-0082, UTC).
``<credentials/>`` asks for them for one service (by host and type, optionally port).

Only the host's own accounts get an answer (``forbidden`` otherwise): the credentials open a
relay.

Pushes (XEP-0215 §3.2): a connected resource that asked for the list is sent an IQ set with
what changed, each ``<service/>`` marked ``add``, ``delete`` or ``modify``, when the list or
the TURN secret changes (``reconfigure``, which a configuration reload calls) and, before
its TURN credentials expire, fresh ones. Resources that are gone are never pushed to (§3.2:
only with presence information): they are forgotten when their session ends.

Services are configured as RFC 7064/7065 URIs, such as ``stun:stun.example.org``,
``turn:turn.example.org:3478?transport=udp`` or ``turns:turn.example.org``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs

from heron import ns, timestamps
from heron.config import build_options, option, parses
from heron.core.module import Module, ModuleContext, Xep, hook, iq_handler
from heron.core.registry import Target
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

DEFAULT_PORTS: Final = {"stun": 3478, "turn": 3478, "stuns": 5349, "turns": 5349}
DEFAULT_TRANSPORTS: Final = {"stun": "udp", "turn": "udp", "stuns": "tcp", "turns": "tcp"}
MAX_WATCHERS: Final = 10000  # resources remembered per host for pushes
REFRESH_AT: Final = 0.8  # of the credential lifetime: when fresh credentials are pushed
REFRESH_CHECK_S: Final = 6.0  # how often due watchers are looked for


@dataclass(frozen=True, slots=True)
class ExtdiscoOptions:
    services: tuple[str, ...] = option(
        (), check=parses(lambda uri: ExternalService.from_uri(uri), "a STUN/TURN URI")
    )
    """STUN/TURN URIs (RFC 7064/7065): "turn:host:port?transport=udp"."""
    secret: str = ""
    """Shared with the TURN server (coturn static-auth-secret); empty: no credentials."""
    credential_ttl_s: int = option(86400, min=60)
    """How long issued TURN credentials stay valid."""


@dataclass(frozen=True, slots=True)
class ExternalService:
    type: str
    host: str
    port: int
    transport: str

    @property
    def needs_credentials(self) -> bool:
        return self.type in ("turn", "turns")

    @property
    def key(self) -> tuple[str, str, int]:
        """What names a service in a push (type, host, port)."""
        return (self.type, self.host, self.port)

    @classmethod
    def from_uri(cls, uri: str) -> ExternalService:
        """Parse ``scheme:host[:port][?transport=udp|tcp]``; ValueError when malformed."""
        scheme, sep, rest = uri.partition(":")
        if not sep or scheme not in DEFAULT_PORTS:
            raise ValueError("the scheme must be stun, stuns, turn or turns")
        address, _, query = rest.partition("?")
        if address.startswith("["):  # an IPv6 literal
            host, _, tail = address[1:].partition("]")
            port_text = tail.removeprefix(":") if tail.startswith(":") else ""
            if tail and not tail.startswith(":"):
                raise ValueError("junk after the IPv6 address")
        else:
            host, _, port_text = address.partition(":")
        if not host or "/" in host or "@" in host:
            raise ValueError("a host is needed")
        port = DEFAULT_PORTS[scheme]
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"bad port {port_text!r}")
            port = int(port_text)
        transport = DEFAULT_TRANSPORTS[scheme]
        params = parse_qs(query, keep_blank_values=True) if query else {}
        if set(params) - {"transport"} or (params and not scheme.startswith("turn")):
            raise ValueError("only turn URIs take a query, and only ?transport=")
        if "transport" in params:
            transport = params["transport"][-1]
            if transport not in ("udp", "tcp"):
                raise ValueError("transport must be udp or tcp")
        return cls(scheme, host, port, transport)

    def to_element(self) -> Element:
        return Element(
            "service",
            ns.EXTDISCO,
            {
                "host": self.host,
                "port": str(self.port),
                "transport": self.transport,
                "type": self.type,
            },
        )


def turn_credentials(secret: str, user: str, expiry: int) -> tuple[str, str]:
    """TURN REST API credentials: ("<expiry>:<user>", base64(HMAC-SHA1(secret, username)))."""
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def _stamp(unix: int) -> str:
    return timestamps.stamp(unix)


@dataclass(slots=True)
class Watcher:
    """A resource that asked for the list: what type it asked for, when to refresh."""

    type: str | None
    refresh_at: float


class ExtdiscoModule(Module):
    name = "extdisco"
    description = "External service discovery: STUN and TURN servers with TURN credentials"
    xeps = (Xep(215, "1.0.0", "complete", "pushes on reconfiguration and before expiry"),)
    disco_features = (ns.EXTDISCO,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options, self.services = self._parse(ctx.options)
        self.watchers: dict[JID, Watcher] = {}

    def _parse(self, raw: Mapping[str, object]) -> tuple[ExtdiscoOptions, list[ExternalService]]:
        path = f'hosts."{self.ctx.domain}".modules.{self.name}'
        options = build_options(ExtdiscoOptions, raw, path)  # URIs and bounds checked
        return options, [ExternalService.from_uri(uri) for uri in options.services]

    async def start(self) -> None:
        # Credentials live at least 60 s and are renewed at a tenth of their life: a look
        # every 6 s finds each watcher due in time (refresh() skips the others).
        self.ctx.every(REFRESH_CHECK_S, self.refresh)

    # --- pushes (XEP-0215 §3.2) -------------------------------------------------------
    async def reconfigure(self, raw: Mapping[str, object]) -> bool:
        """New options (a configuration reload): validated first (ConfigError leaves the
        old ones), then what changed is pushed to every resource that asked; the module
        keeps running, so it remembers who asked."""
        options, services = self._parse(raw)
        old = {s.key: s for s in self.services}
        new = {s.key: s for s in services}
        secret_changed = options.secret != self.options.secret
        changes: list[tuple[str, ExternalService]] = [
            ("delete", s) for key, s in old.items() if key not in new
        ]
        for key, service in new.items():
            before = old.get(key)
            if before is None:
                changes.append(("add", service))
            elif before != service or (service.needs_credentials and secret_changed):
                changes.append(("modify", service))
        self.options, self.services = options, services
        if changes:
            self.ctx.log.info("external services changed: pushing %d changes", len(changes))
            for jid in list(self.watchers):
                await self._push(jid, changes)
        return True

    async def refresh(self) -> None:
        """Push fresh TURN credentials to the resources whose credentials expire soon."""
        now = self.ctx.now()
        turn = [("modify", s) for s in self.services if s.needs_credentials]
        if not turn or not self.options.secret:
            return
        for jid, watcher in list(self.watchers.items()):
            if watcher.refresh_at <= now:
                await self._push(jid, turn)

    async def _push(self, jid: JID, changes: list[tuple[str, ExternalService]]) -> None:
        watcher = self.watchers.get(jid)
        if watcher is None or self.ctx.sessions.get(jid) is None:
            self.watchers.pop(jid, None)  # gone: no presence information, no push
            return
        services = Element("services", ns.EXTDISCO)
        if watcher.type is not None:
            services.attrs["type"] = watcher.type
        user = str(jid.bare)
        for action, service in changes:
            if watcher.type is not None and service.type != watcher.type:
                continue
            el = (
                service.to_element()
                if action == "delete"
                else self._with_credentials(service, user)
            )
            el.attrs["action"] = action
            services.append(el)
        if not services.children:
            return
        watcher.refresh_at = self._refresh_time(watcher.type)
        attrs = {"type": "set", "id": secrets.token_hex(8)}
        iq = Element("iq", ns.CLIENT, {**attrs, "from": self.ctx.domain, "to": str(jid)})
        iq.append(services)
        await self.ctx.send(iq)

    def _refresh_time(self, type_: str | None) -> float:
        bound = any(
            s.needs_credentials and (type_ is None or s.type == type_) for s in self.services
        )
        if not bound or not self.options.secret:
            return math.inf
        return self.ctx.now() + REFRESH_AT * self.options.credential_ttl_s

    def _watch(self, jid: JID | None, type_: str | None) -> None:
        if jid is None or jid.resource is None:
            return
        if jid not in self.watchers and len(self.watchers) >= MAX_WATCHERS:
            self.watchers.pop(next(iter(self.watchers)))  # the oldest goes
        self.watchers[jid] = Watcher(type_, self._refresh_time(type_))

    @hook("session/ended")
    async def forget(self, stanza: Stanza) -> bool:
        if stanza.from_ is not None:
            self.watchers.pop(stanza.from_, None)
        return False

    def _requester(self, iq: Stanza) -> str:
        sender = iq.from_
        if sender is None or sender.local is None or sender.domain != self.ctx.domain:
            raise StanzaError(StanzaCondition.FORBIDDEN, "for this server's users only")
        return str(sender.bare)

    def _with_credentials(self, service: ExternalService, user: str) -> Element:
        el = service.to_element()
        if service.needs_credentials and self.options.secret:
            expiry = int(self.ctx.now()) + self.options.credential_ttl_s
            username, password = turn_credentials(self.options.secret, user, expiry)
            el.attrs.update({"username": username, "password": password})
            el.attrs["expires"] = _stamp(expiry)
        elif service.needs_credentials:
            el.attrs["restricted"] = "true"  # credentials come from elsewhere
        return el

    @iq_handler("get", ns.EXTDISCO, Target.HOST)
    async def on_get(self, iq: Stanza) -> Element | None:
        user = self._requester(iq)
        payload = iq.payload
        assert payload is not None
        if payload.tag == "services":
            wanted = payload.attrs.get("type")
            answer = Element("services", ns.EXTDISCO)
            if wanted is not None:
                answer.attrs["type"] = wanted
            for service in self.services:
                if wanted is None or service.type == wanted:
                    answer.append(self._with_credentials(service, user))
            self._watch(iq.from_, wanted)
            return answer
        if payload.tag == "credentials":
            return self._credentials(payload, user)
        raise StanzaError(StanzaCondition.BAD_REQUEST, "services or credentials")

    def _credentials(self, payload: Element, user: str) -> Element:
        """XEP-0215 §3.3: credentials for a service named by host and type (and port)."""
        asked = payload.find("service", ns.EXTDISCO)
        if asked is None or not asked.attrs.get("host") or not asked.attrs.get("type"):
            raise StanzaError(StanzaCondition.BAD_REQUEST, "a service with host and type")
        port = asked.attrs.get("port")
        matches = [
            s
            for s in self.services
            if s.host == asked.attrs["host"]
            and s.type == asked.attrs["type"]
            and (port is None or str(s.port) == port)
        ]
        if not matches:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no such service")
        if any(s.needs_credentials for s in matches) and not self.options.secret:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "no credentials for it here")
        answer = Element("credentials", ns.EXTDISCO)
        for service in matches:
            answer.append(self._with_credentials(service, user))
        return answer
