"""RFC 6121 §2 rosters through slixmpp: get, set with pushes, remove, versioning, restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from slixmpp.exceptions import IqError

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login
from tests.rawclient import RawClient

PASSWORD = "roster-password"

pytestmark = pytest.mark.both_engines


async def test_set_pushes_to_interested_resources_and_survives_restart(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory()
    running = await start(config)
    try:
        await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
        phone = await login(running, "alice@localhost/phone", PASSWORD)
        laptop = await login(running, "alice@localhost/laptop", PASSWORD)
        try:
            await phone.get_roster(timeout=5)
            await laptop.get_roster(timeout=5)
            pushed = asyncio.ensure_future(laptop.wait_until("roster_update", timeout=5))
            await phone.update_roster("bob@localhost", name="Bob", groups=["Friends"])
            await pushed
            assert laptop.client_roster["bob@localhost"]["name"] == "Bob"
            assert laptop.client_roster["bob@localhost"]["groups"] == ["Friends"]
        finally:
            await close(phone)
            await close(laptop)
    finally:
        await running.stop()

    running = await start(config)  # the roster is stored
    try:
        client = await login(running, "alice@localhost/again", PASSWORD)
        try:
            await client.get_roster(timeout=5)
            assert "bob@localhost" in client.client_roster
            assert client.client_roster["bob@localhost"]["subscription"] == "none"
            await client.del_roster_item("bob@localhost")
            await client.get_roster(timeout=5)
            assert "bob@localhost" not in client.client_roster
        finally:
            await close(client)
    finally:
        await running.stop()


async def test_roster_version_unchanged_gives_empty_result(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("carol@localhost"), PASSWORD)
    client = await login(server, "carol@localhost/x", PASSWORD)
    try:
        await client.update_roster("dave@localhost", name="Dave")
        first = client.make_iq_get(queryxmlns="jabber:iq:roster")
        reply = await first.send(timeout=5)
        ver = reply["roster"]["ver"]
        assert ver
        again = client.make_iq_get(queryxmlns="jabber:iq:roster")
        again["roster"]["ver"] = ver
        unchanged = await again.send(timeout=5)
        assert unchanged.xml.find("{jabber:iq:roster}query") is None
    finally:
        await close(client)


async def test_removing_an_unknown_item_is_item_not_found(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("erin@localhost"), PASSWORD)
    client = await login(server, "erin@localhost/x", PASSWORD)
    try:
        with pytest.raises(IqError) as info:
            await client.del_roster_item("nobody@localhost")
        assert info.value.condition == "item-not-found"
    finally:
        await close(client)


async def test_cannot_read_or_write_another_users_roster(server: RunningServer) -> None:
    for user in ("frank", "grace"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    client = await login(server, "frank@localhost/x", PASSWORD)
    try:
        iq = client.make_iq_get(queryxmlns="jabber:iq:roster", ito="grace@localhost")
        with pytest.raises(IqError) as info:
            await iq.send(timeout=5)
        assert info.value.condition == "service-unavailable"
        push = client.make_iq_set(ito="grace@localhost")
        push.enable("roster")
        push["roster"]["items"] = {"frank@localhost": {"name": "planted"}}
        with pytest.raises(IqError) as info:
            await push.send(timeout=5)
        assert info.value.condition == "service-unavailable"
    finally:
        await close(client)
    grace = await login(server, "grace@localhost/g", PASSWORD)
    try:
        await grace.get_roster(timeout=5)
        assert "frank@localhost" not in grace.client_roster
    finally:
        await close(grace)


async def test_known_version_gets_an_empty_result_then_only_the_changes(
    server: RunningServer,
) -> None:
    """XEP-0237 / RFC 6121 §2.6.3: pushes of the delta, after the empty result."""
    await server.server.accounts.create(JID.parse("ivan@localhost"), PASSWORD)
    client = await login(server, "ivan@localhost/a", PASSWORD)
    try:
        for contact in ("bob", "carol", "dave"):
            await client.update_roster(f"{contact}@localhost", name=contact.title())
        reply = await client.make_iq_get(queryxmlns="jabber:iq:roster").send(timeout=5)
        known = reply["roster"]["ver"]
        await client.update_roster("bob@localhost", name="Robert")
        await client.del_roster_item("carol@localhost")
        await client.update_roster("erin@localhost", name="Erin")
        latest = (await client.make_iq_get(queryxmlns="jabber:iq:roster").send(timeout=5))[
            "roster"
        ]["ver"]
    finally:
        await close(client)

    raw = await RawClient.connect(server.ports["c2s"])
    try:
        await raw.login(server.certificates["localhost"], "ivan", PASSWORD)
        await raw.send(
            f"<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver='{known}'/></iq>"
        )
        result = await raw.expect(r"<iq [^>]*id=.r1.[^>]*/>")
        assert "result" in result.group(0)
        assert "jabber:iq:roster" not in result.string[: result.start()]  # nothing before it
        pushes = [(await raw.expect(r"<iq [^>]*type=.set.[^>]*>.*?</iq>")).group(0) for _ in "123"]
        assert "Robert" in pushes[0]
        assert "carol@localhost" in pushes[1]
        assert "remove" in pushes[1]
        assert "Erin" in pushes[2]
        assert f"ver='{latest}'" in pushes[2] or f'ver="{latest}"' in pushes[2]
        assert "dave" not in "".join(pushes)  # unchanged items are not sent again

        # A version the server cannot vouch for gets the whole roster.
        for bad in ("999999", "not-a-number"):
            await raw.send(
                f"<iq type='get' id='r-{bad}'><query xmlns='jabber:iq:roster' ver='{bad}'/></iq>"
            )
            full = await raw.expect(rf"<iq [^>]*id=.r-{bad}.[^>]*>.*?</iq>")
            for name in ("Robert", "Dave", "Erin"):
                assert name in full.group(0)
    finally:
        raw.close()


async def test_roster_item_limit_is_resource_constraint(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory(hosts={"localhost": {"modules": {"roster": {"max_items": 2}}}})
    running = await start(config)
    try:
        await running.server.accounts.create(JID.parse("kim@localhost"), PASSWORD)
        client = await login(running, "kim@localhost/k", PASSWORD)
        try:
            await client.update_roster("a@localhost")
            await client.update_roster("b@localhost")
            await client.update_roster("a@localhost", name="renaming is fine")
            with pytest.raises(IqError) as info:
                await client.update_roster("c@localhost")
            assert info.value.condition == "resource-constraint"
        finally:
            await close(client)
    finally:
        await running.stop()
