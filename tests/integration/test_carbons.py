"""XEP-0280 with slixmpp: a second device sees what the first sent and received."""

from __future__ import annotations

import asyncio

import pytest
from slixmpp import ClientXMPP
from slixmpp.xmlstream import ET

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "carbons-password"

pytestmark = pytest.mark.both_engines


async def device(server: RunningServer, jid: str, *, carbons: bool) -> ClientXMPP:
    client = await login(server, jid, PASSWORD)
    client.register_plugin("xep_0280")
    client.send_presence()
    if carbons:
        await client.plugin["xep_0280"].enable(timeout=5)
    return client


async def test_carbons_copy_sent_and_received_to_enabled_devices(server: RunningServer) -> None:
    for user in ("alice", "bob"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    phone = await device(server, "alice@localhost/phone", carbons=True)
    laptop = await device(server, "alice@localhost/laptop", carbons=True)
    tablet = await device(server, "alice@localhost/tablet", carbons=False)
    bob = await device(server, "bob@localhost/desk", carbons=False)
    try:
        info = await bob.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
        assert "urn:xmpp:carbons:2" in info["disco_info"]["features"]
        quiet: list[str] = []
        tablet.add_event_handler("carbon_sent", lambda m: quiet.append("sent"))
        tablet.add_event_handler("carbon_received", lambda m: quiet.append("received"))

        # Sent from the phone: the laptop gets a <sent/> copy, the phone itself none.
        copied = asyncio.ensure_future(laptop.wait_until("carbon_sent", timeout=5))
        phone.send_message(mto="bob@localhost", mbody="from my phone", mtype="chat")
        carbon = await copied
        assert carbon["from"].full == "alice@localhost"
        assert carbon["carbon_sent"]["body"] == "from my phone"
        assert carbon["carbon_sent"]["to"].bare == "bob@localhost"

        # Received on the phone (a full-JID message): the laptop gets a <received/> copy.
        copied = asyncio.ensure_future(laptop.wait_until("carbon_received", timeout=5))
        bob.send_message(mto="alice@localhost/phone", mbody="to your phone", mtype="chat")
        carbon = await copied
        assert carbon["carbon_received"]["body"] == "to your phone"
        assert carbon["carbon_received"]["from"].bare == "bob@localhost"

        # <private/> and headlines are not copied; the tablet never enabled carbons.
        phone_saw: list[str] = []
        laptop.add_event_handler("carbon_sent", lambda m: phone_saw.append("copy"))
        private = phone.make_message(mto="bob@localhost", mbody="just this device", mtype="chat")
        private.append(ET.fromstring("<private xmlns='urn:xmpp:carbons:2'/>"))
        got = asyncio.ensure_future(bob.wait_until("message", timeout=5))
        private.send()
        delivered = await got
        assert delivered["body"] == "just this device"
        assert "urn:xmpp:carbons:2" not in str(delivered)  # the mark is removed
        for client in (phone, laptop, tablet, bob):
            await client.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        assert phone_saw == []
        assert quiet == []
    finally:
        for client in (phone, laptop, tablet, bob):
            await close(client)
