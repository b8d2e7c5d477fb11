"""The session manager: bound client sessions by full and bare JID.

In a cluster it also holds a mirror of the resources bound on other nodes (sessions whose
`deliver()` crosses the bus), so the router's questions ("which resources does this
account have?") get the whole cluster's answer without waiting; a `SessionEvents`
listener (the cluster node) hears of every local change to keep the others' mirrors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from heron.jid import JID
from heron.stanza import StreamError
from heron.xmlstream.element import Element

Hold = Callable[[Element], list[Element]]
"""Given a stanza about to be delivered, what to write now (none, it, or more)."""


class Session(Protocol):
    """What the core needs of a bound client session, whatever its transport."""

    @property
    def jid(self) -> JID: ...

    @property
    def is_available(self) -> bool:
        """True after the client sent initial presence and until it goes unavailable."""
        ...

    @property
    def priority(self) -> int: ...

    @property
    def hibernating(self) -> bool:
        """The connection is gone but the session waits to be resumed (XEP-0198)."""
        ...

    def deliver(self, element: Element) -> None:
        """Queue a stanza for this client (never blocks; a stuck client is disconnected)."""

    def set_hold(self, hold: Hold | None) -> None:
        """Route every delivery through ``hold`` (client state indication), or stop."""

    def close(self, error: StreamError | None = None) -> None:
        """End the stream, with a stream error if given."""


class SessionEvents(Protocol):
    """Told of every change to the local sessions (the cluster node)."""

    def bound(self, session: Session) -> None: ...

    def unbound(self, session: Session) -> None: ...

    def presence_changed(self, session: Session) -> None: ...


class RemoteNodeSession(Session, Protocol):
    """A resource bound on another node of the cluster."""

    @property
    def entry(self) -> Any:
        """The registry entry; ``entry.node`` names the node."""
        ...


class SessionManager:
    def __init__(self) -> None:
        self._by_full: dict[JID, Session] = {}
        self._by_bare: dict[JID, dict[JID, Session]] = {}
        self.remote: dict[JID, RemoteNodeSession] = {}  # full JID → a resource elsewhere
        self._remote_by_bare: dict[JID, dict[JID, RemoteNodeSession]] = {}
        self.listener: SessionEvents | None = None

    def __len__(self) -> int:
        return len(self._by_full)

    def bind(self, session: Session) -> Session | None:
        """Register a session; returns the session it displaced (same full JID), if any."""
        full = session.jid
        old = self._by_full.get(full)
        self._by_full[full] = session
        self._by_bare.setdefault(full.bare, {})[full] = session
        if self.listener is not None:
            self.listener.bound(session)
        return old if old is not session else None

    def unbind(self, session: Session) -> bool:
        """Forget a session; False if it was already replaced or gone."""
        full = session.jid
        if self._by_full.get(full) is not session:
            return False
        del self._by_full[full]
        _drop(self._by_bare, full)
        if self.listener is not None:
            self.listener.unbound(session)
        return True

    def presence_changed(self, session: Session) -> None:
        """The session's availability or priority changed (initial, later, unavailable)."""
        if self.listener is not None and self._by_full.get(session.jid) is session:
            self.listener.presence_changed(session)

    def get(self, full: JID) -> Session | None:
        return self._by_full.get(full) or self.remote.get(full)

    def get_local(self, full: JID) -> Session | None:
        return self._by_full.get(full)

    def resources(self, bare: JID) -> list[Session]:
        local = list(self._by_bare.get(bare, {}).values())
        elsewhere = self._remote_by_bare.get(bare)
        if not elsewhere:
            return local
        return local + [s for full, s in elsewhere.items() if full not in self._by_full]

    def all(self) -> list[Session]:
        """The sessions of this node."""
        return list(self._by_full.values())

    # --- the mirror of the other nodes' sessions -------------------------------------
    def add_remote(self, session: RemoteNodeSession) -> None:
        self.remote[session.jid] = session
        self._remote_by_bare.setdefault(session.jid.bare, {})[session.jid] = session

    def remove_remote(self, full: JID, node: str) -> None:
        current = self.remote.get(full)
        if current is not None and current.entry.node == node:
            del self.remote[full]
            _drop(self._remote_by_bare, full)

    def remove_node(self, node: str) -> None:
        for full in [f for f, s in self.remote.items() if s.entry.node == node]:
            self.remove_remote(full, node)


def _drop(by_bare: dict[JID, dict[JID, Any]], full: JID) -> None:
    resources = by_bare.get(full.bare)
    if resources is not None:
        resources.pop(full, None)
        if not resources:
            del by_bare[full.bare]
