"""The session manager: bound client sessions by full and bare JID.

Behind a small interface so a clustered variant (a shared registry on a message bus) can
replace it without the router changing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

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


class SessionManager:
    def __init__(self) -> None:
        self._by_full: dict[JID, Session] = {}
        self._by_bare: dict[JID, dict[JID, Session]] = {}

    def __len__(self) -> int:
        return len(self._by_full)

    def bind(self, session: Session) -> Session | None:
        """Register a session; returns the session it displaced (same full JID), if any."""
        full = session.jid
        old = self._by_full.get(full)
        self._by_full[full] = session
        self._by_bare.setdefault(full.bare, {})[full] = session
        return old if old is not session else None

    def unbind(self, session: Session) -> bool:
        """Forget a session; False if it was already replaced or gone."""
        full = session.jid
        if self._by_full.get(full) is not session:
            return False
        del self._by_full[full]
        resources = self._by_bare.get(full.bare)
        if resources is not None:
            resources.pop(full, None)
            if not resources:
                del self._by_bare[full.bare]
        return True

    def get(self, full: JID) -> Session | None:
        return self._by_full.get(full)

    def resources(self, bare: JID) -> list[Session]:
        return list(self._by_bare.get(bare, {}).values())

    def all(self) -> list[Session]:
        return list(self._by_full.values())
