"""XEP-0198 with slixmpp: acks, resumption after the TCP connection dies, and hibernation
that ends with the missed messages in offline storage, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from slixmpp import ClientXMPP

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "sm-password"

pytestmark = pytest.mark.both_engines


async def users(server: RunningServer) -> tuple[ClientXMPP, ClientXMPP]:
    for user in ("alice", "bob"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    alice = await login(server, "alice@localhost/phone", PASSWORD, plugins=("xep_0198",))
    bob = await login(server, "bob@localhost/desk", PASSWORD)
    alice.send_presence()
    bob.send_presence()
    await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
    return alice, bob


def hibernating(server: RunningServer) -> bool:
    session = server.server.sessions.get(JID.parse("alice@localhost/phone"))
    return session is not None and bool(getattr(session, "hibernating", False))


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for server state a client cannot observe (the server noticing a dead socket)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polled server state, bounded in time
            await asyncio.sleep(0.05)


async def test_resume_after_the_connection_dies_loses_nothing(server: RunningServer) -> None:
    alice, bob = await users(server)
    try:
        sm = alice.plugin["xep_0198"]
        assert sm.sm_id  # enabled, resumable
        # Acks flow: after a few stanzas both sides have counted them.
        for _ in range(6):
            await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        session = server.server.sessions.get(JID.parse("alice@localhost/phone"))
        assert session is not None
        assert session.sm.handled >= 6

        alice.abort()  # the phone loses its network: no </stream:stream>
        await until(lambda: hibernating(server))
        bob.send_message(mto="alice@localhost", mbody="while you were away", mtype="chat")
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)

        resumed = asyncio.ensure_future(alice.wait_until("session_resumed", timeout=10))
        got = asyncio.ensure_future(alice.wait_until("message", timeout=10))
        alice.connect("127.0.0.1", server.ports["c2s"])
        await resumed
        assert (await got)["body"] == "while you were away"
        assert not hibernating(server)
        # Still the same session: online for bob all along, and reachable now.
        back = asyncio.ensure_future(alice.wait_until("message", timeout=5))
        bob.send_message(mto="alice@localhost/phone", mbody="welcome back", mtype="chat")
        assert (await back)["body"] == "welcome back"
    finally:
        await close(alice)
        await close(bob)


async def test_hibernation_timeout_puts_missed_messages_offline(server: RunningServer) -> None:
    server.server.sm_resume_timeout_s = 0.5
    alice, bob = await users(server)
    try:
        alice.abort()
        await until(lambda: hibernating(server))
        bob.send_message(mto="alice@localhost", mbody="kept for later", mtype="chat")
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        # After the resume timeout the session ends and the message goes to offline storage.
        await until(lambda: server.server.sessions.get(JID.parse("alice@localhost/phone")) is None)
    finally:
        await close(alice)
    again = await login(server, "alice@localhost/laptop", PASSWORD)
    try:
        got = asyncio.ensure_future(again.wait_until("message", timeout=5))
        again.send_presence()
        message = await got
        assert message["body"] == "kept for later"
        assert "urn:xmpp:delay" in str(message)  # stamped by offline storage
    finally:
        await close(again)
        await close(bob)
