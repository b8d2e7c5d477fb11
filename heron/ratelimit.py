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
    """Failed-login limits; docs/security.md explains the numbers."""

    free_failures: int = 5  # per (address, account): an honest user's typos cost nothing
    max_delay_s: float = 8.0  # past the free ones the delay doubles from 0.5 s up to this
    block_after: int = 10  # failures for one account from one address → that pair refused
    address_free_failures: int = 25  # from one address, whatever the accounts (a NAT)
    address_block_after: int = 100  # from one address → the whole address refused
    account_free_failures: int = 10  # for one account, from anywhere: slowed, never locked
    window_s: float = 600.0
    block_s: float = 900.0


@dataclass(slots=True)
class _Failures:
    count: int = 0
    first: float = 0.0
    blocked_until: float = 0.0


@dataclass(slots=True)
class AuthThrottle:
    """Failed logins slow down later attempts, then refuse them.

    Failures are counted three ways within ``window_s``: per (address, account) pair, per
    address and per account name. The pair decides first and soonest: one user behind a
    carrier NAT who mistypes is slowed and then blocked on their own account only, never
    everyone behind that address. The address counts at a much higher threshold, which
    still slows and then blocks a sweep across many accounts from one place. The account
    name is only ever slowed, never locked, so nobody can lock a victim out from elsewhere.

    The delay comes before the verdict of every attempt (a delayed *failure* alone would
    let an attacker time out early and read the silence as "wrong password"). Unknown and
    known account names are treated alike: the throttle must not reveal which exist.
    """

    limits: AuthLimits = AuthLimits()
    max_tracked: int = 100000
    _pairs: dict[str, _Failures] = field(default_factory=dict)
    _ips: dict[str, _Failures] = field(default_factory=dict)
    _accounts: dict[str, _Failures] = field(default_factory=dict)

    def _get(self, table: dict[str, _Failures], key: str, now: float) -> _Failures | None:
        entry = table.get(key)
        expired = entry is not None and now - entry.first > self.limits.window_s
        if entry is not None and expired and entry.blocked_until <= now:
            del table[key]
            return None
        return entry

    def _ways(
        self, ip: str, account: str
    ) -> tuple[tuple[dict[str, _Failures], str, int, int], ...]:
        """(table, key, free failures, block after; 0: never) for each way of counting."""
        lim, address = self.limits, ip_key(ip)
        return (
            (self._pairs, f"{address} {account}", lim.free_failures, lim.block_after),
            (self._ips, address, lim.address_free_failures, lim.address_block_after),
            (self._accounts, account, lim.account_free_failures, 0),
        )

    def blocked(self, ip: str, account: str, now: float) -> bool:
        for table, key, _free, block_after in self._ways(ip, account):
            entry = self._get(table, key, now)
            if block_after and entry is not None and entry.blocked_until > now:
                return True
        return False

    def delay(self, ip: str, account: str, now: float) -> float:
        """Seconds to wait before answering this attempt."""
        excess = -1
        for table, key, free, _block_after in self._ways(ip, account):
            entry = self._get(table, key, now)
            if entry is not None:
                excess = max(excess, entry.count - free)
        if excess < 0:
            return 0.0
        return float(min(self.limits.max_delay_s, 0.5 * 2**excess))

    def failed(self, ip: str, account: str, now: float) -> bool:
        """Count a failure; True when it got the pair or the address blocked."""
        newly_blocked = False
        for table, key, _free, block_after in self._ways(ip, account):
            if len(table) >= self.max_tracked:
                cutoff = now - self.limits.window_s
                for old in [k for k, e in table.items() if e.first < cutoff]:
                    del table[old]
            entry = self._get(table, key, now)
            if entry is None:
                if len(table) >= self.max_tracked:
                    continue  # under a distributed flood: count what fits
                entry = table[key] = _Failures(first=now)
            entry.count += 1
            if block_after and entry.count >= block_after:
                newly_blocked = newly_blocked or entry.blocked_until <= now
                entry.blocked_until = now + self.limits.block_s
        return newly_blocked

    def succeeded(self, ip: str, account: str) -> None:
        """The account's owner got in: its name, and this address's failures for it, are
        forgotten (the address's own count stays)."""
        self._accounts.pop(account, None)
        self._pairs.pop(f"{ip_key(ip)} {account}", None)
