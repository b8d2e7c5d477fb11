"""What `heron status` and `heron sessions` show, read from the running server."""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING, Any

from heron.core.sessions import Session
from heron.jid import JID, InvalidJID
from heron.stanza import StreamCondition, StreamError

if TYPE_CHECKING:
    from heron.app import RunningServer

# The transport of a session, by the class of its link (heron.transport's adapters).
_TRANSPORTS = {"TcpLink": "tcp", "WebSocketLink": "websocket", "BoshLink": "bosh"}


def transport_of(session: Session) -> str:
    link = getattr(session, "link", None)
    return _TRANSPORTS.get(type(link).__name__, "other")


def memory_bytes() -> int:
    """The process's resident memory (Linux /proc), else its peak."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _gauge(running: RunningServer, name: str, what: str) -> int:
    entry = running.server.metrics.gauges.get(name)
    if entry is None:
        return 0
    return int(sum(v for read in entry[1] for labels, v in read() if labels.get("what") == what))


def status(running: RunningServer) -> dict[str, Any]:
    server = running.server
    per_host: dict[str, dict[str, int]] = {h.domain: {} for h in server.config.hosts}
    for session in server.sessions.all():
        counts = per_host.setdefault(session.jid.domain, {})
        kind = "hibernating" if session.hibernating else transport_of(session)
        counts[kind] = counts.get(kind, 0) + 1
    return {
        "version": server.version,
        "uptime_s": round(time.time() - server.metrics.started, 1),
        "hosts": per_host,
        "sessions": len(server.sessions),
        "s2s_peers": sorted({remote for _local, remote in server.s2s.routes}),
        "components": sorted(server.components.connected),
        "rooms": _gauge(running, "heron_muc", "rooms"),
        "memory_bytes": memory_bytes(),
        "listeners": {kind: port for kind, port in running.ports.items()},
    }


def _matches(session: Session, jid: JID | None) -> bool:
    if jid is None:
        return True
    if jid.local is None:
        return session.jid.domain == jid.domain
    return session.jid == jid if jid.resource is not None else session.jid.bare == jid


def sessions(running: RunningServer, text: str | None) -> list[dict[str, Any]]:
    """The local sessions, all or those of a domain, an account or one resource."""
    jid = _parse(text)
    now = time.monotonic()
    found = []
    for session in sorted(running.server.sessions.all(), key=lambda s: str(s.jid)):
        if not _matches(session, jid):
            continue
        started = getattr(session, "started", now)
        link = getattr(session, "link", None)
        found.append(
            {
                "jid": str(session.jid),
                "transport": transport_of(session),
                "peer": getattr(link, "peer", ""),
                "available": session.is_available,
                "priority": session.priority,
                "hibernating": session.hibernating,
                "stream_management": getattr(session, "sm", None) is not None,
                "connected_s": round(now - started, 1),
            }
        )
    return found


def kick(running: RunningServer, text: str) -> int:
    """End the sessions of an account (bare JID) or one session (full JID)."""
    jid = _parse(text)
    if jid is None or jid.local is None:
        raise ValueError(f"{text!r} is not an account or session address")
    error = StreamError(StreamCondition.POLICY_VIOLATION, "session ended by an administrator")
    ended = [s for s in running.server.sessions.all() if _matches(s, jid)]
    for session in ended:
        session.close(error)
    return len(ended)


def _parse(text: str | None) -> JID | None:
    if not text:
        return None
    try:
        return JID.parse(text)
    except InvalidJID as exc:
        raise ValueError(f"{text!r} is not a valid JID: {exc}") from exc
