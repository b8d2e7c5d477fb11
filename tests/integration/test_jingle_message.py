"""XEP-0353 Jingle Message Initiation: call signals ring every device and stay in the archive.

A propose sent to the callee's bare JID reaches every one of her devices (the chosen one
directly, the others as XEP-0280 carbons, even one with a negative priority), lands in both
archives (it has no body, only the XEP-0334 <store/> hint), and the proceed that one device
answers with reaches the caller and stops the callee's other devices from ringing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slixmpp import ClientXMPP
from slixmpp.xmlstream import ET

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "jingle-message-pw"

pytestmark = pytest.mark.both_engines


JMI = "urn:xmpp:jingle-message:0"
CALL = "ca3cf894-5325-482f-a412-a6e9f832298d"


async def device(server: RunningServer, jid: str, priority: int = 0) -> ClientXMPP:
    client = await login(server, jid, PASSWORD, plugins=("xep_0280", "xep_0313"))
    client.send_presence(ppriority=priority)
    await client.plugin["xep_0280"].enable(timeout=5)
    return client


def signal(client: ClientXMPP, to: str, xml: str) -> None:
    message = client.make_message(mto=to, mtype="chat")
    message.append(ET.fromstring(xml))
    message.append(ET.fromstring("<store xmlns='urn:xmpp:hints'/>"))
    message.send()


def jmi_child(message: Any, tag: str) -> Any:
    return message.xml.find(f"{{{JMI}}}{tag}")


async def arrives(client: ClientXMPP, tag: str) -> asyncio.Future[Any]:
    """A future for the next message (or carbon of one) carrying the JMI element ``tag``."""
    found: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def check(message: Any) -> None:
        if found.done():
            return
        if next(message.xml.iter(f"{{{JMI}}}{tag}"), None) is not None:  # itself or a carbon
            found.set_result(message)

    def incoming(stanza: Any) -> Any:
        check(stanza)  # slixmpp's "message" event needs a <body/>: look at all input
        return stanza

    client.add_filter("in", incoming)
    return found


async def archived(client: ClientXMPP, tag: str) -> list[str]:
    ids = []
    async for m in client.plugin["xep_0313"].iterate():
        found = m["mam_result"]["forwarded"]["stanza"].xml.find(f"{{{JMI}}}{tag}")
        if found is not None:
            ids.append(found.get("id"))
    return ids


async def test_propose_rings_every_device_and_is_archived(server: RunningServer) -> None:
    for user in ("romeo", "juliet"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    orchard = await device(server, "romeo@localhost/orchard")
    balcony = await device(server, "romeo@localhost/balcony")
    phone = await device(server, "juliet@localhost/phone")
    laptop = await device(server, "juliet@localhost/laptop", priority=-1)
    try:
        at_phone = await arrives(phone, "propose")
        at_laptop = await arrives(laptop, "propose")
        at_balcony = await arrives(balcony, "propose")
        signal(
            orchard,
            "juliet@localhost",
            f"<propose xmlns='{JMI}' id='{CALL}'>"
            "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>",
        )
        direct = await asyncio.wait_for(at_phone, 5)
        assert jmi_child(direct, "propose").get("id") == CALL
        copy = await asyncio.wait_for(at_laptop, 5)  # negative priority: via carbons
        assert copy["carbon_received"]["from"].full == "romeo@localhost/orchard"
        sent = await asyncio.wait_for(at_balcony, 5)  # the caller's other device knows too
        assert sent["carbon_sent"]["to"].bare == "juliet@localhost"

        # The phone takes the call: the caller hears, the laptop stops ringing.
        at_orchard = await arrives(orchard, "proceed")
        stop_ringing = await arrives(laptop, "proceed")
        signal(phone, "romeo@localhost", f"<proceed xmlns='{JMI}' id='{CALL}'/>")
        assert jmi_child(await asyncio.wait_for(at_orchard, 5), "proceed").get("id") == CALL
        await asyncio.wait_for(stop_ringing, 5)

        # Both archives hold the propose and the proceed (no body, but a <store/> hint).
        assert await archived(laptop, "propose") == [CALL]
        assert await archived(laptop, "proceed") == [CALL]
        assert await archived(balcony, "propose") == [CALL]
        assert await archived(balcony, "proceed") == [CALL]
    finally:
        for client in (orchard, balcony, phone, laptop):
            await close(client)


async def test_no_permanent_store_hint_keeps_a_message_out_of_the_archive(
    server: RunningServer,
) -> None:
    for user in ("romeo", "juliet"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    romeo = await device(server, "romeo@localhost/orchard")
    juliet = await device(server, "juliet@localhost/phone")
    try:
        got = asyncio.ensure_future(juliet.wait_until("message", timeout=5))
        message = romeo.make_message(mto="juliet@localhost", mbody="off the record", mtype="chat")
        message.append(ET.fromstring("<no-permanent-store xmlns='urn:xmpp:hints'/>"))
        message.send()
        await got
        bodies = [
            str(m["mam_result"]["forwarded"]["stanza"]["body"])
            async for m in juliet.plugin["xep_0313"].iterate()
        ]
        assert "off the record" not in bodies
    finally:
        await close(romeo)
        await close(juliet)
