"""vcard-temp (XEP-0054) and private XML storage (XEP-0049) driven by slixmpp."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

import pytest
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ElementBase

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login

pytestmark = pytest.mark.both_engines  # these modules' stores run on both

PASSWORD = "password-123"
MODULES = {"localhost": {"modules": ["disco", "ping", "vcard", "private"]}}


class Prefs(ElementBase):  # type: ignore[misc]
    name = "exodus"
    namespace = "exodus:prefs"
    plugin_attrib = "exodus_prefs"
    interfaces: ClassVar[set[str]] = {"defaultnick"}
    sub_interfaces: ClassVar[set[str]] = interfaces


async def connect(running: RunningServer, jid: str) -> ClientXMPP:
    client = await login(running, jid, PASSWORD)
    client.register_plugin("xep_0054")
    client.register_plugin("xep_0049")
    client.plugin["xep_0049"].register(Prefs)
    return client


async def publish_name(client: ClientXMPP, full_name: str) -> None:
    card = client.plugin["xep_0054"].make_vcard()
    card["FN"] = full_name
    card["NICKNAME"] = full_name.split()[0]
    await client.plugin["xep_0054"].publish_vcard(card, timeout=5)


async def store_nick(client: ClientXMPP, nick: str) -> None:
    prefs = Prefs()
    prefs["defaultnick"] = nick
    await client.plugin["xep_0049"].store(prefs, timeout=5)


async def stored_nick(client: ClientXMPP) -> str:
    reply = await client.plugin["xep_0049"].retrieve("exodus_prefs", timeout=5)
    return str(reply["private"]["exodus_prefs"]["defaultnick"])


async def test_vcard_round_trip_and_read_by_another_user(
    config_factory: Callable[..., ServerConfig],
) -> None:
    running = await start(config_factory(hosts=MODULES))
    alice = bob = None
    try:
        await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
        await running.server.accounts.create(JID.parse("bob@localhost"), PASSWORD)
        alice = await connect(running, "alice@localhost/pc")
        bob = await connect(running, "bob@localhost/phone")

        info = await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
        features = info["disco_info"]["features"]
        assert "vcard-temp" in features
        assert "jabber:iq:private" in features

        empty = await alice.plugin["xep_0054"].get_vcard("alice@localhost", local=False, timeout=5)
        assert empty["vcard_temp"]["FN"] == ""

        with pytest.raises(IqError) as info_error:
            await bob.plugin["xep_0054"].get_vcard("alice@localhost", local=False, timeout=5)
        assert info_error.value.condition == "item-not-found"

        await publish_name(alice, "Alice Liddell")
        own = await alice.plugin["xep_0054"].get_vcard("alice@localhost", local=False, timeout=5)
        assert own["vcard_temp"]["FN"] == "Alice Liddell"
        seen = await bob.plugin["xep_0054"].get_vcard("alice@localhost", local=False, timeout=5)
        assert seen["vcard_temp"]["FN"] == "Alice Liddell"
        assert seen["vcard_temp"]["NICKNAME"] == ["Alice"]  # slixmpp reads a list

        card = bob.plugin["xep_0054"].make_vcard()
        card["FN"] = "Mallory"
        with pytest.raises(IqError) as set_error:
            await bob.plugin["xep_0054"].publish_vcard(card, jid="alice@localhost", timeout=5)
        assert set_error.value.condition == "forbidden"
    finally:
        for client in (alice, bob):
            if client is not None:
                await close(client)
        await running.stop()


async def test_private_storage_survives_restart(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory(hosts=MODULES)
    running = await start(config)
    alice = bob = None
    try:
        await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
        await running.server.accounts.create(JID.parse("bob@localhost"), PASSWORD)
        alice = await connect(running, "alice@localhost/pc")
        bob = await connect(running, "bob@localhost/phone")

        assert await stored_nick(alice) == ""
        await store_nick(alice, "Hamlet")
        assert await stored_nick(alice) == "Hamlet"
        assert await stored_nick(bob) == ""  # private to its owner

        iq = bob.make_iq_get(ito="alice@localhost")
        iq["private"].enable("exodus_prefs")
        with pytest.raises(IqError) as error:
            await iq.send(timeout=5)
        assert error.value.condition == "forbidden"

        await publish_name(alice, "Alice Liddell")
    finally:
        for client in (alice, bob):
            if client is not None:
                await close(client)
        await running.stop()

    running = await start(config)
    alice = bob = None
    try:
        alice = await connect(running, "alice@localhost/pc")
        bob = await connect(running, "bob@localhost/phone")
        assert await stored_nick(alice) == "Hamlet"
        seen = await bob.plugin["xep_0054"].get_vcard("alice@localhost", local=False, timeout=5)
        assert seen["vcard_temp"]["FN"] == "Alice Liddell"
    finally:
        for client in (alice, bob):
            if client is not None:
                await close(client)
        await running.stop()


async def test_a_removed_account_leaves_nothing_to_its_successor(
    config_factory: Callable[..., ServerConfig],
) -> None:
    """XEP-0077 §3.2 removal: the vCard, private XML and blocklist go with the account
    (rows and what the modules cached), so a new account of the same name starts empty."""
    modules = ["disco", "ping", "register", "vcard", "private", "blocking"]
    running = await start(config_factory(hosts={"localhost": {"modules": modules}}))
    try:
        await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
        alice = await connect(running, "alice@localhost/pc")
        alice.register_plugin("xep_0191")
        await publish_name(alice, "Alice Liddell")
        await store_nick(alice, "Hamlet")
        await alice.plugin["xep_0191"].block("mallory@localhost", timeout=5)
        gone = asyncio.ensure_future(alice.wait_until("disconnected", timeout=5))
        await alice.plugin["xep_0077"].cancel_registration(timeout=5)
        await gone

        await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
        again = await connect(running, "alice@localhost/pc")
        try:
            again.register_plugin("xep_0191")
            card = await again.plugin["xep_0054"].get_vcard(
                "alice@localhost", local=False, timeout=5
            )
            assert card["vcard_temp"]["FN"] == ""
            assert await stored_nick(again) == ""
            blocked = await again.plugin["xep_0191"].get_blocked(timeout=5)
            assert blocked.xml.findall("{urn:xmpp:blocking}blocklist/{urn:xmpp:blocking}item") == []
        finally:
            await close(again)
    finally:
        await running.stop()
