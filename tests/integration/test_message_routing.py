"""RFC 6121 §8.5 message delivery to bare and full JIDs, with priorities."""

from __future__ import annotations

import asyncio

import pytest
from slixmpp import ClientXMPP

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "routing-password"

pytestmark = pytest.mark.both_engines


async def resource(server: RunningServer, jid: str, priority: int | None) -> ClientXMPP:
    client = await login(server, jid, PASSWORD)
    if priority is not None:
        client.send_presence(ppriority=priority)
        await client.plugin["xep_0199"].ping(jid="localhost", timeout=5)  # presence processed
    return client


async def collect(client: ClientXMPP, bucket: list[str]) -> None:
    client.add_event_handler("message", lambda m: m["type"] != "error" and bucket.append(m["body"]))


async def settle(*clients: ClientXMPP) -> None:
    for client in clients:  # a round trip each: anything routed to them has arrived
        await client.plugin["xep_0199"].ping(jid="localhost", timeout=5)


async def test_bare_jid_goes_to_highest_priority_and_never_to_negative(
    server: RunningServer,
) -> None:
    for user in ("sender", "multi"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    sender = await resource(server, "sender@localhost/s", None)
    high = await resource(server, "multi@localhost/high", 10)
    low = await resource(server, "multi@localhost/low", 1)
    negative = await resource(server, "multi@localhost/neg", -1)
    got_high: list[str] = []
    got_low: list[str] = []
    got_negative: list[str] = []
    try:
        await collect(high, got_high)
        await collect(low, got_low)
        await collect(negative, got_negative)
        sender.send_message(mto="multi@localhost", mbody="to the bare JID", mtype="chat")
        await settle(sender, high, low, negative)
        assert got_high == ["to the bare JID"]
        assert got_low == []
        assert got_negative == []

        # The negative-priority resource still gets messages to its full JID.
        sender.send_message(mto="multi@localhost/neg", mbody="direct", mtype="chat")
        await settle(sender, negative)
        assert got_negative == ["direct"]
    finally:
        for client in (sender, high, low, negative):
            await close(client)


async def test_message_to_a_gone_resource_falls_back_to_the_bare_jid(
    server: RunningServer,
) -> None:
    for user in ("from", "to"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    sender = await resource(server, "from@localhost/x", None)
    receiver = await resource(server, "to@localhost/here", 0)
    try:
        arrived = asyncio.ensure_future(receiver.wait_until("message", timeout=5))
        sender.send_message(mto="to@localhost/gone", mbody="fallback", mtype="chat")
        message = await arrived
        assert message["body"] == "fallback"
    finally:
        await close(sender)
        await close(receiver)
