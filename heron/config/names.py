"""Names in the configuration: domains (hosts, peers) and administrators' addresses."""

from __future__ import annotations

import re
from typing import Final

from heron.config.model import ConfigError
from heron.jid import JID, InvalidJID

_DNS_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_domain(domain: str, path: str) -> None:
    """Refuse anything but a lowercase ASCII DNS name (IDNs in their xn-- form)."""
    if domain != domain.lower():
        raise ConfigError(f"{path}: the domain must be lowercase")
    labels = domain.split(".")
    if len(domain) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ConfigError(f"{path}: {domain!r} is not a valid DNS name")
    if labels[-1].isdigit():
        raise ConfigError(f"{path}: {domain!r} is an IP address, not a domain")


def admin_jids(raw: object, path: str) -> tuple[str, ...]:
    """`admins = ["boss@example.org"]`: accounts (bare JIDs), normalised, each once."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f"{path}: expected an array of account addresses")
    result: list[str] = []
    for text in raw:
        try:
            jid = JID.parse_account(text)
        except InvalidJID as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if str(jid) not in result:
            result.append(str(jid))
    return tuple(result)
