"""The one place that decides where a stanza goes (RFC 6120 §10, RFC 6121 §8).

Each stanza is classified by its ``to`` into a target (host, self, bare, full, remote) and
an event ``kind/target`` (``message/bare``, ``iq/host``...) is run through the host's hooks in
priority order, as Prosody does. When no hook consumes it, the core default below applies.
The table of defaults is in docs/routing.md.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from heron.core.registry import HostRegistry, Target
from heron.core.sessions import Session, SessionManager
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError, error_reply, iq_result
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)


class Router:
    def __init__(
        self,
        sessions: SessionManager,
        registry_for: Callable[[str], HostRegistry | None],
        user_exists: Callable[[JID], object],
    ) -> None:
        self.sessions = sessions
        self.registry_for = registry_for
        self._user_exists = user_exists
        # Set by the server when federation is on: hands a stanza to the s2s routes.
        self.remote: Callable[[Stanza], None] | None = None
        self.metrics: Counter[str] = Counter()  # stanzas routed, by kind
        # Domains of this server served by something other than its own tables (external
        # components, XEP-0114): domain → a function that delivers there or raises
        # StanzaError (service-unavailable while the component is offline).
        self.external: dict[str, Callable[[Stanza], None]] = {}

    def is_ours(self, domain: str) -> bool:
        """A domain this server answers for: a host, a service or a component."""
        return domain in self.external or self.registry_for(domain) is not None

    async def user_exists(self, jid: JID) -> bool:
        result = self._user_exists(jid)
        if hasattr(result, "__await__"):
            return bool(await result)
        return bool(result)

    # --- entry points -----------------------------------------------------------------
    async def route_element(self, element: Element) -> None:
        """Route XML the server itself made (``from`` set by the caller)."""
        to = JID.parse(element.attrs["to"]) if "to" in element.attrs else None
        from_ = JID.parse(element.attrs["from"]) if "from" in element.attrs else None
        await self.route(Stanza(element, to, from_))

    async def route(self, stanza: Stanza, origin: Session | None = None) -> None:
        """Deliver or handle one stanza. Never raises for bad input: it answers with errors."""
        self.metrics[stanza.kind] += 1
        try:
            await self._route(stanza, origin)
        except StanzaError as err:
            self.bounce(stanza, err, origin)
        except Exception:
            log.exception("internal error routing a %s stanza", stanza.kind)
            self.bounce(stanza, StanzaError(StanzaCondition.INTERNAL_SERVER_ERROR), origin)

    def bounce(self, stanza: Stanza, err: StanzaError, origin: Session | None = None) -> None:
        """Answer ``stanza`` with an error, unless it must never get one (RFC 6120 §8.3.1)."""
        if stanza.type == "error" or (stanza.kind == "iq" and stanza.type in ("result",)):
            return
        if stanza.kind == "presence" and stanza.type not in ("subscribe", "probe", "available"):
            return
        if err.by is None and stanza.to is not None and stanza.to.local is not None:
            service = self.registry_for(stanza.to.domain)
            if service is not None and service.errors_by_address:
                err.by = str(stanza.to.bare)
        reply = error_reply(stanza.element, err)
        if stanza.from_ is None:
            return
        if stanza.from_.domain in self.external:
            self._external(Stanza(reply, stanza.from_, stanza.to))
            return
        if self.registry_for(stanza.from_.domain) is None:
            # From another server: the error goes back over federation.
            if self.remote is not None and stanza.to is not None:
                self.remote(Stanza(reply, stanza.from_, stanza.to))
            return
        target = self.sessions.get(stanza.from_)
        if target is not None:
            target.deliver(reply)
        elif origin is not None:
            origin.deliver(reply)

    async def _route(self, stanza: Stanza, origin: Session | None) -> None:
        if origin is not None:
            # Outbound processing on the sender's own server first (``pre-<kind>``).
            home = self.registry_for(origin.jid.domain)
            if home is not None and await home.run_hooks(f"pre-{stanza.kind}", stanza):
                return
        to = stanza.to
        if to is not None and to.domain in self.external:
            self.external[to.domain](stanza)  # XEP-0114: the component's whole domain
            return
        if to is None:
            # RFC 6120 §10.3: no 'to' means the sender's own account.
            if stanza.from_ is None:
                return
            registry = self.registry_for(stanza.from_.domain)
            target = "self"
        else:
            registry = self.registry_for(to.domain)
            if registry is None:
                target = "remote"
            elif to.local is None:
                target = "host" if to.resource is None else "full"
            elif to.resource is None:
                is_self = stanza.from_ is not None and stanza.from_.bare == to
                target = "self" if is_self else "bare"
            else:
                target = "full"
        event = f"{stanza.kind}/{target}"
        if registry is not None and await registry.run_hooks(event, stanza):
            return
        await self._default(stanza, target, registry)

    # --- defaults ---------------------------------------------------------------------
    async def _default(self, stanza: Stanza, target: str, registry: HostRegistry | None) -> None:
        kind = stanza.kind
        if target == "remote":
            if self.remote is None:  # federation is off
                raise StanzaError(StanzaCondition.REMOTE_SERVER_NOT_FOUND)
            if stanza.from_ is None or not self.is_ours(stanza.from_.domain):
                return  # never relay between two other servers
            self.remote(stanza)
            return
        assert registry is not None
        if kind == "iq":
            await self._iq(stanza, target, registry)
        elif kind == "message":
            await self._message(stanza, target)
        else:
            self._presence(stanza, target)

    async def _iq(self, stanza: Stanza, target: str, registry: HostRegistry) -> None:
        type_ = stanza.type
        if target == "full":
            assert stanza.to is not None
            session = self.sessions.get(stanza.to)
            if session is not None:
                session.deliver(stanza.element)
            elif type_ in ("get", "set"):
                raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
            return
        if type_ not in ("get", "set"):
            return  # results and errors for the server: nobody waits for them here
        payload = stanza.payload
        if payload is None or sum(1 for _ in stanza.element.elements()) != 1:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "an IQ get/set has exactly one child")
        mask = {"host": Target.HOST, "self": Target.SELF, "bare": Target.BARE}[target]
        handler = registry.find_iq_handler(type_, payload.ns, mask)
        if handler is None:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
        if stanza.to is None and stanza.from_ is not None:
            stanza.to = stanza.from_.bare
        result = await handler(stanza)
        if not stanza.meta.get("answered"):
            self.reply(stanza, iq_result(stanza, result))

    def reply(self, request: Stanza, reply: Element) -> None:
        """Answer a request: to a local session, or back to a component or remote server."""
        sender = request.from_
        if sender is None:
            return
        session = self.sessions.get(sender)
        if session is not None:
            session.deliver(reply)
        elif sender.domain in self.external:
            self._external(Stanza(reply, sender, request.to))
        elif self.remote is not None and request.to is not None and not self.is_ours(sender.domain):
            self.remote(Stanza(reply, sender, request.to))  # a remote server's request

    def _external(self, stanza: Stanza) -> None:
        """An answer for a component: dropped when it is offline (never bounced back)."""
        assert stanza.to is not None
        try:
            self.external[stanza.to.domain](stanza)
        except StanzaError:
            log.debug("answer for offline component %s dropped", stanza.to.domain)

    async def _message(self, stanza: Stanza, target: str) -> None:
        type_ = stanza.type
        to = stanza.to
        if target == "host" or to is None:
            return  # nothing on the server consumes plain messages (yet): ignore
        if target == "full":
            session = self.sessions.get(to)
            if session is not None:
                session.deliver(stanza.element)
                await self._delivered(stanza, [session])
                return
            # RFC 6121 §8.5.3.2.1: no such resource, treat as if sent to the bare JID.
            if type_ == "groupchat":
                raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
            if type_ == "error":
                return
        await self._message_bare(stanza, to.bare)

    async def _message_bare(self, stanza: Stanza, bare: JID) -> None:
        """RFC 6121 §8.5.2: the highest-priority available resources get it."""
        registry = self.registry_for(bare.domain)
        type_ = stanza.type
        if type_ in ("error", "groupchat") and not self.sessions.resources(bare):
            if type_ == "groupchat":
                raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
            return
        candidates = [
            s for s in self.sessions.resources(bare) if s.is_available and s.priority >= 0
        ]
        if type_ == "groupchat":
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
        if candidates:
            if type_ == "headline":
                chosen = candidates
            else:
                top = max(s.priority for s in candidates)
                chosen = [s for s in candidates if s.priority == top]
            for session in chosen:
                session.deliver(stanza.element)
            await self._delivered(stanza, chosen)
            return
        if type_ in ("headline", "error"):
            return
        # No available resource: offline storage may take it (``message/offline``);
        # otherwise the sender learns it was not delivered (RFC 6121 §8.5.2.2.1).
        if registry is not None and await registry.run_hooks("message/offline", stanza):
            return
        raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)

    async def _delivered(self, stanza: Stanza, sessions: list[Session]) -> None:
        """``message/delivered``: after a message reached local sessions (carbons copy it to
        the account's other devices); ``meta["delivered_to"]`` names the receivers."""
        if stanza.to is None:
            return
        registry = self.registry_for(stanza.to.domain)
        if registry is not None and registry.hooks.get("message/delivered"):
            stanza.meta["delivered_to"] = {s.jid for s in sessions}
            await registry.run_hooks("message/delivered", stanza)

    def _presence(self, stanza: Stanza, target: str) -> None:
        to = stanza.to
        if to is None or target in ("host", "self"):
            return
        if stanza.type in ("available", "unavailable"):
            # Directed presence: the sender chose to tell this entity.
            if target == "full":
                session = self.sessions.get(to)
                if session is not None:
                    session.deliver(stanza.element)
                return
            for session in self.sessions.resources(to.bare):
                if session.is_available:  # RFC 6121 §8.5.2.1.1: available resources only
                    session.deliver(stanza.element)
        # Subscription management and probes belong to the roster (IM core): ignored here.
