"""Sans-IO accounting behind the connection, rate and login limits (clock passed in)."""

from __future__ import annotations

from heron.ratelimit import (
    AuthLimits,
    AuthThrottle,
    ConnectionGuard,
    ConnectionLimits,
    TokenBucket,
    ip_key,
)


def test_token_bucket_waits_are_what_the_rate_implies() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert bucket.take(5, 0.0) == 0.0
    assert bucket.take(1, 0.0) == 0.1  # one token short at 10/s
    assert bucket.take(0, 0.1) == 0.0  # refilled by then
    assert not bucket.is_full(0.1)
    assert bucket.is_full(10.0)


def test_guard_caps_unauthenticated_and_frees_on_close() -> None:
    guard = ConnectionGuard(ConnectionLimits(max_unauthenticated_per_ip=2, new_per_ip_burst=100))
    assert guard.admit("192.0.2.1", 0.0) is None
    assert guard.admit("192.0.2.1", 0.0) is None
    assert guard.admit("192.0.2.1", 0.0) is not None  # a third one still logging in
    assert guard.admit("192.0.2.2", 0.0) is None  # other addresses are not affected
    guard.authenticated("192.0.2.1")
    assert guard.admit("192.0.2.1", 0.0) is None  # a logged-in one no longer counts
    guard.closed("192.0.2.1", authenticated=True)
    guard.closed("192.0.2.1", authenticated=False)
    guard.closed("192.0.2.1", authenticated=False)
    guard.closed("192.0.2.2", authenticated=False)
    assert guard.total == 0


def test_guard_caps_per_address_total_and_rate() -> None:
    guard = ConnectionGuard(
        ConnectionLimits(
            max_connections=3, max_per_ip=2, max_unauthenticated_per_ip=10, new_per_ip_burst=100
        )
    )
    assert guard.admit("2001:db8::1", 0.0) is None
    assert guard.admit("2001:db8::2", 0.0) is None  # the same /64
    assert guard.admit("2001:db8::3", 0.0) == "too many connections from this address"
    assert guard.admit("192.0.2.9", 0.0) is None
    assert guard.admit("192.0.2.10", 0.0) == "server connection limit reached"
    slow = ConnectionGuard(ConnectionLimits(new_per_ip_per_s=1, new_per_ip_burst=2))
    assert slow.admit("192.0.2.1", 0.0) is None
    assert slow.admit("192.0.2.1", 0.0) is None
    assert slow.admit("192.0.2.1", 0.0) == "connecting too fast from this address"
    assert slow.admit("192.0.2.1", 1.0) is None


def test_ip_key_groups_ipv6_by_64() -> None:
    assert ip_key("2001:db8::1") == ip_key("2001:db8::ffff:1")
    assert ip_key("2001:db8::1") != ip_key("2001:db8:0:1::1")
    assert ip_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert ip_key("192.0.2.1") == "192.0.2.1"


def test_a_brute_force_on_one_account_is_slowed_then_that_pair_refused() -> None:
    throttle = AuthThrottle()
    now, ip, victim = 0.0, "192.0.2.1", "victim@example.org"
    delays = []
    for _ in range(10):
        assert not throttle.blocked(ip, victim, now)
        delay = throttle.delay(ip, victim, now)
        delays.append(delay)
        now += delay + 0.1
        throttle.failed(ip, victim, now)
    assert delays[:5] == [0.0] * 5  # an honest user's typos are answered at once
    assert delays[5:8] == [0.5, 1.0, 2.0]  # then doubling ...
    assert delays[9] == AuthLimits().max_delay_s  # ... to the cap
    assert throttle.blocked(ip, victim, now)
    # Someone else behind the same address (a carrier NAT) is neither blocked nor slowed.
    assert not throttle.blocked(ip, "neighbour@example.org", now)
    assert throttle.delay(ip, "neighbour@example.org", now) == 0.0
    assert not throttle.blocked(ip, victim, now + AuthLimits().block_s + 1)


def test_a_sweep_across_accounts_from_one_address_is_slowed_then_blocked() -> None:
    limits = AuthLimits()
    throttle = AuthThrottle()
    ip = "2001:db8::1"
    for n in range(limits.address_free_failures):
        assert throttle.delay(ip, f"user{n}@example.org", 0.0) == 0.0
        throttle.failed(ip, f"user{n}@example.org", 0.0)
    assert throttle.delay("2001:db8::2", "fresh@example.org", 0.0) == 0.5  # same /64
    for n in range(limits.address_free_failures, limits.address_block_after):
        assert not throttle.blocked(ip, f"user{n}@example.org", 0.0)
        throttle.failed(ip, f"user{n}@example.org", 0.0)
    assert throttle.blocked(ip, "anyone@example.org", 0.0)
    assert not throttle.blocked("198.51.100.7", "anyone@example.org", 0.0)


def test_account_names_are_slowed_never_blocked_and_success_clears_them() -> None:
    throttle = AuthThrottle()
    for n in range(14):
        throttle.failed(f"192.0.2.{n}", "victim@example.org", 0.0)  # many addresses
    assert not throttle.blocked("198.51.100.1", "victim@example.org", 0.0)
    assert throttle.delay("198.51.100.1", "victim@example.org", 0.0) == 8.0
    assert throttle.delay("198.51.100.1", "nobody@example.org", 0.0) == 0.0
    throttle.succeeded("198.51.100.1", "victim@example.org")
    assert throttle.delay("198.51.100.1", "victim@example.org", 0.0) == 0.0
    # Failures older than the window are forgotten.
    for _ in range(6):
        throttle.failed("192.0.2.200", "x", 0.0)
    assert throttle.delay("192.0.2.200", "x", 1.0) > 0
    assert throttle.delay("192.0.2.200", "x", AuthLimits().window_s + 1) == 0.0
