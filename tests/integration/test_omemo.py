"""OMEMO (XEP-0384) end to end through Heron's PEP: two slixmpp clients with the
slixmpp-omemo plugin publish device lists and bundles (access_model open, max_items max),
fetch each other's, and exchange a message only the receiver can read."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest
from omemo.storage import Just, Maybe, Nothing, Storage
from omemo.types import DeviceInformation, JSONType
from slixmpp import JID as SJID
from slixmpp import ClientXMPP
from slixmpp.plugins import register_plugin
from slixmpp_omemo import XEP_0384

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, make_client

PASSWORD = "omemo-password"
TWOMEMO_DEVICES = "urn:xmpp:omemo:2:devices"
TWOMEMO_BUNDLES = "urn:xmpp:omemo:2:bundles"


class MemoryStorage(Storage):
    """OMEMO key material kept in memory for the test's life."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, JSONType] = {}

    async def _load(self, key: str) -> Maybe[JSONType]:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value: JSONType) -> None:
        self.data[key] = value

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)


class TestOmemo(XEP_0384):  # type: ignore[misc]  # slixmpp-omemo ships no complete types
    """Trust on first use (blind trust before verification) and in-memory storage."""

    __test__ = False  # not a pytest class
    default_config: ClassVar[dict[str, str]] = {"fallback_message": "OMEMO encrypted."}

    def plugin_init(self) -> None:
        self._memory = MemoryStorage()
        super().plugin_init()

    @property
    def storage(self) -> Storage:
        return self._memory

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _devices_blindly_trusted(
        self, blindly_trusted: frozenset[DeviceInformation], identifier: str | None
    ) -> None:
        return None

    async def _prompt_manual_trust(
        self, manually_trusted: frozenset[DeviceInformation], identifier: str | None
    ) -> None:
        return None


TestOmemo.name = "xep_0384"
register_plugin(TestOmemo)


@pytest.fixture
async def omemo_server(
    config_factory: Callable[..., ServerConfig],
) -> AsyncIterator[RunningServer]:
    running = await start(config_factory())
    for user in ("alice", "bob"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def omemo_client(server: RunningServer, user: str) -> ClientXMPP:
    """Logged in with OMEMO ready: its device list and bundle are published."""
    client = make_client(server, f"{user}@localhost/phone", PASSWORD)
    client.use_message_ids = True
    client.register_plugin("xep_0384", module=sys.modules[__name__])
    ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def done(*_args: Any) -> None:
        if not ready.done():
            ready.set_result(True)

    def failed(*_args: Any) -> None:
        if not ready.done():
            ready.set_result(False)

    client.add_event_handler("omemo_initialized", done)
    client.add_event_handler("session_start", lambda _e: client.send_presence())
    client.add_event_handler("failed_all_auth", failed)
    client.add_event_handler("disconnected", failed)
    client.connect("127.0.0.1", server.ports["c2s"])
    assert await asyncio.wait_for(ready, 20), f"{user} could not log in"
    return client


async def test_omemo_message_between_two_clients(omemo_server: RunningServer) -> None:
    alice = await omemo_client(omemo_server, "alice")
    bob = await omemo_client(omemo_server, "bob")
    try:
        # Both published through PEP, readable by anyone (access_model open).
        for client, other in ((alice, "bob@localhost"), (bob, "alice@localhost")):
            devices = await client.plugin["xep_0060"].get_items(
                SJID(other), TWOMEMO_DEVICES, timeout=5
            )
            assert len(devices["pubsub"]["items"]) == 1
            bundles = await client.plugin["xep_0060"].get_items(
                SJID(other), TWOMEMO_BUNDLES, timeout=5
            )
            assert len(bundles["pubsub"]["items"]) == 1

        received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def on_message(stanza: Any) -> None:
            omemo = bob.plugin["xep_0384"]
            if omemo.is_encrypted(stanza) and not received.done():
                received.set_result(stanza)

        bob.add_event_handler("message", on_message)
        message = alice.make_message(mto=SJID("bob@localhost"), mtype="chat")
        message["body"] = "the eagle lands at dawn"
        encrypted, errors = await alice.plugin["xep_0384"].encrypt_message(
            message, SJID("bob@localhost")
        )
        assert encrypted is not None, errors
        encrypted.send()

        stanza = await asyncio.wait_for(received, 10)
        assert "the eagle lands at dawn" not in str(stanza)  # what Heron routed was ciphertext
        decrypted, device = await bob.plugin["xep_0384"].decrypt_message(stanza)
        assert decrypted["body"] == "the eagle lands at dawn"
        assert device.bare_jid == "alice@localhost"
    finally:
        await close(alice)
        await close(bob)
