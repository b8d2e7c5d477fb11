"""Logging in with slixmpp over STARTTLS and Direct TLS, with each SASL mechanism."""

from __future__ import annotations

import asyncio
import time

import pytest

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import LoginFailed, close, login, make_client

pytestmark = pytest.mark.both_engines  # every store this touches, on each engine

PASSWORD = "correct horse battery"


async def add_user(server: RunningServer, jid: str, password: str = PASSWORD) -> None:
    await server.server.accounts.create(JID.parse(jid), password)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-512", "PLAIN"])
async def test_starttls_login_with_each_mechanism(server: RunningServer, mech: str) -> None:
    await add_user(server, "alice@localhost")
    client = await login(server, "alice@localhost/phone", PASSWORD, mech=mech)
    try:
        assert str(client.boundjid) == "alice@localhost/phone"
    finally:
        await close(client)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "PLAIN"])
async def test_direct_tls_login(server: RunningServer, mech: str) -> None:
    await add_user(server, "bob@localhost")
    client = await login(server, "bob@localhost/laptop", PASSWORD, direct_tls=True, mech=mech)
    try:
        assert client.boundjid.bare == "bob@localhost"
    finally:
        await close(client)


async def test_default_mechanism_choice_logs_in(server: RunningServer) -> None:
    """slixmpp picks the strongest mechanism offered (a -PLUS one where it can bind)."""
    await add_user(server, "carol@localhost")
    client = await login(server, "carol@localhost", PASSWORD)
    try:
        assert client.boundjid.resource  # the server generated one
    finally:
        await close(client)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "PLAIN"])
async def test_wrong_password_fails(server: RunningServer, mech: str) -> None:
    await add_user(server, "dave@localhost")
    with pytest.raises(LoginFailed, match=r"auth failed|disconnected"):
        await login(server, "dave@localhost", "not the password", mech=mech)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "PLAIN"])
async def test_unknown_user_fails(server: RunningServer, mech: str) -> None:
    with pytest.raises(LoginFailed, match=r"auth failed|disconnected"):
        await login(server, "nobody@localhost", PASSWORD, mech=mech)


async def test_second_login_with_same_resource_replaces_first(server: RunningServer) -> None:
    await add_user(server, "erin@localhost")
    first = await login(server, "erin@localhost/desk", PASSWORD)
    errors: list[str] = []
    first.add_event_handler("stream_error", lambda e: errors.append(e["condition"]))
    first_gone = asyncio.ensure_future(first.wait_until("disconnected", timeout=5))
    second = await login(server, "erin@localhost/desk", PASSWORD)
    try:
        await first_gone
        assert errors == ["conflict"]
        assert second.boundjid.full == "erin@localhost/desk"
        live = server.server.sessions.get(JID.parse("erin@localhost/desk"))
        assert live is not None
        assert live.is_bound
    finally:
        await close(second)
        await close(first)


async def test_a_mistyped_password_counts_once_whatever_the_mechanisms_tried(
    server: RunningServer,
) -> None:
    """slixmpp falls back from one SASL mechanism to the next after a wrong password: one
    failed attempt, not one per mechanism, so five typos are still answered at once."""
    await server.server.accounts.create(JID.parse("typo@localhost"), PASSWORD)
    tried: list[str] = []
    throttle = server.server.auth_throttle
    for _ in range(5):
        # Each of the five is answered without a wait (the throttle's delay is still 0).
        assert throttle.delay("127.0.0.1", "typo@localhost", time.monotonic()) == 0.0
        client = make_client(server, "typo@localhost/x", "wrong password")
        client.add_event_handler("failed_auth", lambda _e: tried.append("failed"))
        failed = asyncio.ensure_future(client.wait_until("failed_all_auth", timeout=10))
        client.connect("127.0.0.1", server.ports["c2s"])
        await failed
        await close(client)
    assert len(tried) > 5  # it did fall back (more than one mechanism per login)
    assert throttle.delay("127.0.0.1", "typo@localhost", time.monotonic()) > 0  # the sixth
    client = await login(server, "typo@localhost/x", PASSWORD)
    await close(client)
