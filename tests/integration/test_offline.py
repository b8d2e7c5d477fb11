"""XEP-0160 offline messages: stored while away, delivered with a delay stamp, kept across a
restart, and never delivered twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from heron.app import start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "offline-password"

pytestmark = pytest.mark.both_engines


async def test_offline_messages_survive_restart_and_arrive_in_order_with_delay(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory()
    running = await start(config)
    try:
        for user in ("alice", "bob"):
            await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        alice = await login(running, "alice@localhost/a", PASSWORD)
        try:
            for n in range(3):
                alice.send_message(mto="bob@localhost", mbody=f"note {n}", mtype="chat")
            await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)  # all routed
        finally:
            await close(alice)
    finally:
        await running.stop()

    running = await start(config)
    try:
        bob = await login(running, "bob@localhost/b", PASSWORD)
        try:
            received: list[tuple[str, str]] = []
            done = asyncio.get_running_loop().create_future()

            def on_message(msg: object) -> None:
                received.append((msg["body"], msg["delay"]["stamp"]))  # type: ignore[index]
                if len(received) == 3 and not done.done():
                    done.set_result(None)

            bob.register_plugin("xep_0203")
            bob.add_event_handler("message", on_message)
            bob.send_presence()
            await asyncio.wait_for(done, 5)
            assert [body for body, _ in received] == ["note 0", "note 1", "note 2"]
            assert all(stamp is not None for _, stamp in received)
        finally:
            await close(bob)
        # Delivered once: a second login gets nothing more.
        again = await login(running, "bob@localhost/c", PASSWORD)
        try:
            extra: list[str] = []
            again.add_event_handler("message", lambda m: extra.append(m["body"]))
            again.send_presence()
            await again.plugin["xep_0199"].ping(jid="localhost", timeout=5)
            assert extra == []
        finally:
            await close(again)
    finally:
        await running.stop()


async def test_message_to_unknown_user_is_service_unavailable(
    config_factory: Callable[..., ServerConfig],
) -> None:
    running = await start(config_factory())
    try:
        await running.server.accounts.create(JID.parse("carol@localhost"), PASSWORD)
        carol = await login(running, "carol@localhost/c", PASSWORD)
        try:
            errors = asyncio.ensure_future(carol.wait_until("message_error", timeout=5))
            carol.send_message(mto="ghost@localhost", mbody="anyone?", mtype="chat")
            error = await errors
            assert error["error"]["condition"] == "service-unavailable"
        finally:
            await close(carol)
    finally:
        await running.stop()


async def test_full_offline_store_bounces_with_service_unavailable(
    config_factory: Callable[..., ServerConfig],
) -> None:
    """XEP-0160 §2: past the per-user limit the sender gets the message back as an error."""
    config = config_factory(hosts={"localhost": {"modules": {"offline": {"max_messages": 2}}}})
    running = await start(config)
    try:
        for user in ("dan", "away"):
            await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        dan = await login(running, "dan@localhost/d", PASSWORD)
        try:
            errors: list[str] = []
            dan.add_event_handler("message_error", lambda m: errors.append(m["error"]["condition"]))
            for n in range(3):
                dan.send_message(mto="away@localhost", mbody=f"note {n}", mtype="chat")
            await dan.plugin["xep_0199"].ping(jid="localhost", timeout=5)
            assert errors == ["service-unavailable"]
        finally:
            await close(dan)
        away = await login(running, "away@localhost/a", PASSWORD)
        try:
            got: list[str] = []
            away.add_event_handler("message", lambda m: got.append(m["body"]))
            away.send_presence()
            await away.plugin["xep_0199"].ping(jid="localhost", timeout=5)
            assert got == ["note 0", "note 1"]
        finally:
            await close(away)
    finally:
        await running.stop()
