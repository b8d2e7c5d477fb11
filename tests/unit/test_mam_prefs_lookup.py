"""The archive reads an account's preferences once, however many of its messages arrive
while they are being read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from heron.jid import JID
from heron.modules.mam.module import MamModule
from tests.harness import start_server


async def test_messages_arriving_together_share_one_prefs_lookup(tmp_path: Path) -> None:
    server = await start_server(tmp_path, ("alice",))
    try:
        registry = server.registry_for("localhost")
        assert registry is not None
        module = registry.archive
        assert isinstance(module, MamModule)
        reads = 0
        read_mode = module.store.mode

        async def counting_mode(domain: str, username: str) -> str | None:
            nonlocal reads
            reads += 1
            await asyncio.sleep(0.01)  # the database takes a moment
            return await read_mode(domain, username)

        module.store.mode = counting_mode  # type: ignore[method-assign]
        alice = JID.parse("alice@localhost")
        found = await asyncio.gather(*(module._prefs(alice) for _ in range(5)))
        assert reads == 1
        assert all(prefs is found[0] for prefs in found)
        assert found[0].mode == "always"
        await module._prefs(alice)  # cached now
        assert reads == 1
    finally:
        await server.stop()
