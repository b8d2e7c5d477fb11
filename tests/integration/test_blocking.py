"""XEP-0191 blocking with slixmpp: both directions, pushes, and unblocking."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login

pytestmark = pytest.mark.both_engines  # these modules' stores run on both

PASSWORD = "blocking-password"


async def online(server: RunningServer, jid: str) -> ClientXMPP:
    await server.server.accounts.create(JID.parse(jid.split("/")[0]), PASSWORD)
    client = await login(server, jid, PASSWORD)
    client.register_plugin("xep_0191")
    client.send_presence()
    return client


async def test_blocking_stops_messages_both_ways(server: RunningServer) -> None:
    alice = await online(server, "alice@localhost/a")
    mallory = await online(server, "mallory@localhost/m")
    try:
        await alice.plugin["xep_0191"].get_blocked(timeout=5)
        await alice.plugin["xep_0191"].block("mallory@localhost", timeout=5)
        blocked = await alice.plugin["xep_0191"].get_blocked(timeout=5)
        items = blocked.xml.findall("{urn:xmpp:blocking}blocklist/{urn:xmpp:blocking}item")
        assert [i.get("jid") for i in items] == ["mallory@localhost"]

        got: list[str] = []
        alice.add_event_handler("message", lambda m: m["type"] != "error" and got.append(m["body"]))
        error = asyncio.ensure_future(mallory.wait_until("message_error", timeout=5))
        mallory.send_message(mto="alice@localhost/a", mbody="spam", mtype="chat")
        assert (await error)["error"]["condition"] == "service-unavailable"

        own_error = asyncio.ensure_future(alice.wait_until("message_error", timeout=5))
        alice.send_message(mto="mallory@localhost", mbody="hi", mtype="chat")
        refused = await own_error
        assert refused["error"]["condition"] == "not-acceptable"
        assert refused.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None

        iq = mallory.make_iq_get(queryxmlns="urn:xmpp:ping", ito="alice@localhost/a")
        with pytest.raises(IqError) as info:
            await iq.send(timeout=5)
        assert info.value.condition == "service-unavailable"
        assert got == []

        await alice.plugin["xep_0191"].unblock("mallory@localhost", timeout=5)
        arrived = asyncio.ensure_future(alice.wait_until("message", timeout=5))
        mallory.send_message(mto="alice@localhost/a", mbody="sorry", mtype="chat")
        assert (await arrived)["body"] == "sorry"
    finally:
        await close(alice)
        await close(mallory)


async def test_block_pushes_to_other_resources(server: RunningServer) -> None:
    phone = await online(server, "bob@localhost/phone")
    laptop = await login(server, "bob@localhost/laptop", PASSWORD)
    laptop.register_plugin("xep_0191")
    try:
        await laptop.plugin["xep_0191"].get_blocked(timeout=5)
        pushed = asyncio.ensure_future(laptop.wait_until("blocked", timeout=5))
        await phone.plugin["xep_0191"].block("spammer@localhost", timeout=5)
        await pushed
    finally:
        await close(phone)
        await close(laptop)


async def test_a_blocklist_has_a_limit_and_a_refused_block_changes_nothing(
    config_factory: Callable[..., ServerConfig],
) -> None:
    hosts = {"localhost": {"modules": {"blocking": {"max_items": 2}}}}
    running = await start(config_factory(hosts=hosts))
    alice = await online(running, "alice@localhost/a")
    try:
        await alice.plugin["xep_0191"].block(["a@example.net", "b@example.net"], timeout=5)
        with pytest.raises(IqError) as refused:
            await alice.plugin["xep_0191"].block(["c@example.net", "d@example.net"], timeout=5)
        assert refused.value.condition == "resource-constraint"
        blocked = await alice.plugin["xep_0191"].get_blocked(timeout=5)
        items = blocked.xml.findall("{urn:xmpp:blocking}blocklist/{urn:xmpp:blocking}item")
        assert sorted(i.get("jid") for i in items) == ["a@example.net", "b@example.net"]
        await alice.plugin["xep_0191"].unblock(["a@example.net"], timeout=5)
        await alice.plugin["xep_0191"].block(["c@example.net"], timeout=5)  # room again
    finally:
        await close(alice)
        await running.stop()
