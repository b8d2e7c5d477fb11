"""Server services answered to a real client: disco, ping, version, time, registration."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError

from heron import ns
from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "s3cret-enough"


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ClientXMPP]:
    await server.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    c = await login(server, "alice@localhost/test", PASSWORD)
    try:
        yield c
    finally:
        await close(c)


async def test_disco_info_lists_server_features(client: ClientXMPP) -> None:
    info = await client.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
    features = info["disco_info"]["features"]
    for feature in (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING, ns.VERSION, ns.TIME):
        assert feature in features
    identities = info["disco_info"]["identities"]
    assert any(i[0] == "server" and i[1] == "im" for i in identities)


async def test_disco_items_answered(client: ClientXMPP) -> None:
    items = await client.plugin["xep_0030"].get_items(jid="localhost", timeout=5)
    assert items["type"] == "result"


async def test_ping_server(client: ClientXMPP) -> None:
    rtt = await client.plugin["xep_0199"].ping(jid="localhost", timeout=5)
    assert rtt >= 0


async def test_version_and_time(client: ClientXMPP) -> None:
    version = await client.plugin["xep_0092"].get_version("localhost", timeout=5)
    assert version["software_version"]["name"] == "Heron"
    reply = await client.plugin["xep_0202"].get_entity_time("localhost", timeout=5)
    # Read the raw XML: slixmpp 1.17's getter appends a second "Z" to the conforming value.
    utc = reply.xml.find("{urn:xmpp:time}time/{urn:xmpp:time}utc").text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", utc)


async def test_unhandled_iq_gets_service_unavailable(client: ClientXMPP) -> None:
    iq = client.make_iq_get(queryxmlns="urn:example:nothing", ito="localhost")
    with pytest.raises(IqError) as info:
        await iq.send(timeout=5)
    assert info.value.condition == "service-unavailable"


async def test_message_between_two_clients(server: RunningServer, client: ClientXMPP) -> None:
    await server.server.accounts.create(JID.parse("bob@localhost"), PASSWORD)
    bob = await login(server, "bob@localhost/pc", PASSWORD)
    try:
        got = bob.wait_until("message", timeout=5)
        client.send_message(mto=bob.boundjid.full, mbody="hello bob", mtype="chat")
        msg = await got
        assert msg["body"] == "hello bob"
        assert msg["from"].full == "alice@localhost/test"
    finally:
        await close(bob)


async def test_contact_addresses_and_services_are_discoverable(
    config_factory: Callable[..., ServerConfig],
) -> None:
    disco = {"abuse": ["mailto:abuse@example.org", "xmpp:abuse@example.org"]}
    running = await start(config_factory(hosts={"localhost": {"modules": {"disco": disco}}}))
    try:
        await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
        alice = await login(running, "alice@localhost/test", PASSWORD)
        try:
            info = await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
            fields = {
                f.get("var"): [v.text for v in f.findall("{jabber:x:data}value")]
                for f in info.xml.findall(".//{jabber:x:data}x/{jabber:x:data}field")
            }
            assert fields["FORM_TYPE"] == ["http://jabber.org/network/serverinfo"]
            assert fields["abuse-addresses"] == disco["abuse"]
            items = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=5)
            found = {str(i[0]) for i in items["disco_items"]["items"]}
            assert {"conference.localhost", "pubsub.localhost", "upload.localhost"} <= found
        finally:
            await close(alice)
    finally:
        await running.stop()
