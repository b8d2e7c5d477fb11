"""Rate and connection accounting against floods and brute force (sans-IO, clock passed in).

Everything here is keyed by ``ip_key``: an IPv4 address, or the /64 of an IPv6 one (a single
host is routinely handed a whole /64, so counting addresses would not limit anyone).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


def ip_key(ip: str) -> str:
    """The unit limits count: the address, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # not an IP (a UNIX socket path): count it as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; the balance may go negative."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, amount: float, now: float) -> float:
        """Spend ``amount``; returns how long to wait until the balance is back to zero."""
        self._refill(now)
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def try_take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 10000
    max_per_ip: int = 100
    max_unauthenticated_per_ip: int = 20
    new_per_ip_per_s: float = 5.0
    new_per_ip_burst: int = 30


@dataclass(slots=True)
class _PerIp:
    open: int = 0
    unauthenticated: int = 0


@dataclass(slots=True)
class ConnectionGuard:
    """Admits or refuses new connections; told when they log in and when they close."""

    limits: ConnectionLimits
    total: int = 0
    _ips: dict[str, _PerIp] = field(default_factory=dict)
    _rates: dict[str, TokenBucket] = field(default_factory=dict)

    def admit(self, ip: str, now: float) -> str | None:
        """None to accept (and count) the connection, else the reason it is refused."""
        key = ip_key(ip)
        limits = self.limits
        if self.total >= limits.max_connections:
            return "server connection limit reached"
        counts = self._ips.get(key)
        if counts is not None:
            if counts.open >= limits.max_per_ip:
                return "too many connections from this address"
            if counts.unauthenticated >= limits.max_unauthenticated_per_ip:
                return "too many connections from this address still logging in"
        bucket = self._rates.get(key)
        if bucket is None:
            if len(self._rates) >= 4 * limits.max_connections:
                self._rates = {k: b for k, b in self._rates.items() if not b.is_full(now)}
            bucket = self._rates[key] = TokenBucket(
                limits.new_per_ip_per_s, limits.new_per_ip_burst, now
            )
        if not bucket.try_take(now):
            return "connecting too fast from this address"
        if counts is None:
            counts = self._ips[key] = _PerIp()
        counts.open += 1
        counts.unauthenticated += 1
        self.total += 1
        return None

    def authenticated(self, ip: str) -> None:
        counts = self._ips.get(ip_key(ip))
        if counts is not None and counts.unauthenticated > 0:
            counts.unauthenticated -= 1

    def closed(self, ip: str, *, authenticated: bool) -> None:
        key = ip_key(ip)
        counts = self._ips.get(key)
        if counts is None:
            return
        counts.open -= 1
        if not authenticated and counts.unauthenticated > 0:
            counts.unauthenticated -= 1
        self.total -= 1
        if counts.open <= 0:
            del self._ips[key]


@dataclass(frozen=True, slots=True)
class AuthLimits:
    free_failures: int = 3  # failures before any delay
    max_delay_s: float = 8.0  # the delay doubles per failure up to this
    block_after: int = 20  # failures from one address in the window → blocked
    window_s: float = 600.0
    block_s: float = 900.0


@dataclass(slots=True)
class _Failures:
    count: int = 0
    first: float = 0.0
    blocked_until: float = 0.0


@dataclass(slots=True)
class AuthThrottle:
    """Failed logins slow down later attempts, per address and per account name.

    The delay comes before the verdict of every attempt (a delayed *failure* alone would
    let an attacker time out early and read the silence as "wrong password"). An address
    past ``block_after`` failures is refused outright for ``block_s``; an account name is
    only ever slowed, never locked, so nobody can lock a victim out. Unknown and known
    account names are treated alike: the throttle must not reveal which exist.
    """

    limits: AuthLimits = AuthLimits()
    max_tracked: int = 100000
    _ips: dict[str, _Failures] = field(default_factory=dict)
    _accounts: dict[str, _Failures] = field(default_factory=dict)

    def _get(self, table: dict[str, _Failures], key: str, now: float) -> _Failures | None:
        entry = table.get(key)
        expired = entry is not None and now - entry.first > self.limits.window_s
        if entry is not None and expired and entry.blocked_until <= now:
            del table[key]
            return None
        return entry

    def blocked(self, ip: str, now: float) -> bool:
        entry = self._get(self._ips, ip_key(ip), now)
        return entry is not None and entry.blocked_until > now

    def delay(self, ip: str, account: str, now: float) -> float:
        """Seconds to wait before answering this attempt."""
        worst = 0
        for table, key in ((self._ips, ip_key(ip)), (self._accounts, account)):
            entry = self._get(table, key, now)
            if entry is not None:
                worst = max(worst, entry.count)
        excess = worst - self.limits.free_failures
        if excess < 0:
            return 0.0
        return float(min(self.limits.max_delay_s, 0.5 * 2**excess))

    def failed(self, ip: str, account: str, now: float) -> bool:
        """Count a failure; True when it got the address blocked."""
        for table in (self._ips, self._accounts):
            if len(table) >= self.max_tracked:
                cutoff = now - self.limits.window_s
                for key in [k for k, e in table.items() if e.first < cutoff]:
                    del table[key]
        newly_blocked = False
        for table, key in ((self._ips, ip_key(ip)), (self._accounts, account)):
            entry = self._get(table, key, now)
            if entry is None:
                if len(table) >= self.max_tracked:
                    continue  # under a distributed flood: count what fits
                entry = table[key] = _Failures(first=now)
            entry.count += 1
            if table is self._ips and entry.count >= self.limits.block_after:
                newly_blocked = entry.blocked_until <= now
                entry.blocked_until = now + self.limits.block_s
        return newly_blocked

    def succeeded(self, account: str) -> None:
        """The account's owner got in: its name is no longer slowed (the address still is)."""
        self._accounts.pop(account, None)
