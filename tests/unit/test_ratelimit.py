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


def test_default_throttle_slows_the_20th_attempt_and_refuses_the_21st() -> None:
    throttle = AuthThrottle()
    now = 0.0
    delays = []
    for _ in range(20):
        assert not throttle.blocked("192.0.2.1", now)
        delay = throttle.delay("192.0.2.1", "victim@example.org", now)
        delays.append(delay)
        now += delay + 0.1
        throttle.failed("192.0.2.1", "victim@example.org", now)
    assert delays[:3] == [0.0, 0.0, 0.0]  # typos are free
    assert delays[3:6] == [0.5, 1.0, 2.0]  # then doubling ...
    assert delays[19] == AuthLimits().max_delay_s  # ... to the cap
    assert throttle.blocked("192.0.2.1", now)
    assert not throttle.blocked("192.0.2.1", now + AuthLimits().block_s + 1)


def test_account_names_are_slowed_never_blocked_and_success_clears_them() -> None:
    throttle = AuthThrottle(AuthLimits(block_after=1000))
    for n in range(10):
        throttle.failed(f"192.0.2.{n}", "victim@example.org", 0.0)  # many addresses
    assert not throttle.blocked("198.51.100.1", 0.0)
    assert throttle.delay("198.51.100.1", "victim@example.org", 0.0) == 8.0
    assert throttle.delay("198.51.100.1", "nobody@example.org", 0.0) == 0.0
    throttle.succeeded("victim@example.org")
    assert throttle.delay("198.51.100.1", "victim@example.org", 0.0) == 0.0
    # Failures older than the window are forgotten.
    assert throttle.delay("192.0.2.1", "x", 0.0) == 0.0
    for _ in range(5):
        throttle.failed("192.0.2.1", "x", 0.0)
    assert throttle.delay("192.0.2.1", "y", 1.0) > 0
    assert throttle.delay("192.0.2.1", "y", AuthLimits().window_s + 1) == 0.0
