"""Routes to external components (XEP-0114): one connection per configured domain.

A component's domain is routed like any other domain of this server: the router hands every
stanza addressed to it (or to any JID at it) to ``send``, from local users, server modules or
remote servers over s2s. While no component is connected for a configured domain, stanzas
to it bounce with ``service-unavailable`` (RFC 6120 §8.3.3.19). A second connection for the
same domain is refused with ``conflict``, or replaces the first when configured so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from heron.config import ComponentConfig
from heron.core.module import Xep
from heron.stanza import Stanza, StanzaCondition, StanzaError, StreamCondition, StreamError
from heron.xmlstream.element import Element

log = logging.getLogger(__name__)

DESCRIPTION = "External components (gateways, bots) on their own domains (`[components]`)"
XEPS = (Xep(114, "1.6", "complete"),)


class ComponentSession(Protocol):
    """What the core needs of a connected component."""

    domain: str

    def deliver(self, element: Element) -> None: ...

    def close(self, error: StreamError | None = None) -> None: ...


class ComponentManager:
    def __init__(self, configs: Iterable[ComponentConfig]) -> None:
        self.configs: dict[str, ComponentConfig] = {c.domain: c for c in configs}
        self.connected: dict[str, ComponentSession] = {}

    def __contains__(self, domain: object) -> bool:
        return domain in self.configs

    def secret(self, domain: str) -> str | None:
        config = self.configs.get(domain)
        return config.secret if config is not None else None

    def attach(self, session: ComponentSession) -> None:
        """Route the session's domain to it; a second connection: conflict or replacement."""
        domain = session.domain
        old = self.connected.get(domain)
        if old is not None and old is not session:
            if not self.configs[domain].replace:
                log.info("component %s: second connection refused", domain)
                raise StreamError(StreamCondition.CONFLICT, f"{domain} is already connected")
            log.info("component %s: replaced by a new connection", domain)
            del self.connected[domain]
            old.close(StreamError(StreamCondition.CONFLICT, "replaced by a new connection"))
        self.connected[domain] = session

    def detach(self, session: ComponentSession) -> None:
        if self.connected.get(session.domain) is session:
            del self.connected[session.domain]
            log.info("component %s disconnected", session.domain)

    def send(self, stanza: Stanza) -> None:
        """Hand a stanza to the component serving its ``to`` domain."""
        assert stanza.to is not None
        session = self.connected.get(stanza.to.domain)
        if session is None:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE, "the component is offline")
        session.deliver(stanza.element)

    def close_all(self, error: StreamError) -> None:
        for session in list(self.connected.values()):
            session.close(error)
        self.connected.clear()
