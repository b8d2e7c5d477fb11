"""Who administers which host: the config's `admins`, kept current across reloads."""

from __future__ import annotations

from heron.config import ServerConfig
from heron.jid import JID


class Admins:
    """Bare JIDs allowed to administer each host (XEP-0133 commands, service administration)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self._server: frozenset[str] = frozenset()
        self._hosts: dict[str, frozenset[str]] = {}
        if config is not None:
            self.update(config)

    def update(self, config: ServerConfig) -> None:
        """Take the lists of a (re)loaded configuration."""
        self._server = frozenset(config.admins)
        self._hosts = {host.domain: config.admins_of(host.domain) for host in config.hosts}

    def is_admin(self, jid: JID, domain: str) -> bool:
        """True when ``jid``'s account administers ``domain`` (server-wide or that host)."""
        if jid.local is None:
            return False
        return str(jid.bare) in self._hosts.get(domain, self._server)

    def of(self, domain: str) -> frozenset[str]:
        return self._hosts.get(domain, self._server)
