"""A clean stop (what SIGTERM does): clients are told system-shutdown, and the messages a
hibernated stream-management session never acknowledged are kept offline, not lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from heron.app import start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login
from tests.integration.test_stream_management import PASSWORD, until


async def test_stop_tells_clients_and_keeps_a_hibernated_sessions_messages(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory()
    running = await start(config)
    try:
        for user in ("alice", "bob"):
            await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        alice = await login(running, "alice@localhost/phone", PASSWORD, plugins=("xep_0198",))
        bob = await login(running, "bob@localhost/desk", PASSWORD)
        alice.send_presence()
        bob.send_presence()
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        alice_full = JID.parse("alice@localhost/phone")

        def hibernating() -> bool:
            session = running.server.sessions.get(alice_full)
            return session is not None and bool(getattr(session, "hibernating", False))

        alice.abort()  # the phone loses its network; the session waits to be resumed
        await until(hibernating)
        bob.send_message(mto="alice@localhost", mbody="sent before the restart", mtype="chat")
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        told: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_error(error: object) -> None:
            if not told.done():
                told.set_result(str(error))

        bob.add_event_handler("stream_error", on_error)
    except BaseException:
        await running.stop()
        raise
    await running.stop()
    assert "system-shutdown" in await asyncio.wait_for(told, 5)
    await close(bob)
    await close(alice)

    running = await start(config)
    try:
        again = await login(running, "alice@localhost/laptop", PASSWORD)
        try:
            got = asyncio.ensure_future(again.wait_until("message", timeout=5))
            again.send_presence()
            assert (await got)["body"] == "sent before the restart"
        finally:
            await close(again)
    finally:
        await running.stop()
