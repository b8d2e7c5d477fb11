"""Spam controls with slixmpp: strangers refused or held, replies pass, request caps,
and XEP-0377 reports reaching the admin through `heron reports`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login
from tests.integration.test_cli import CONFIG, heron, storage_of

pytestmark = pytest.mark.both_engines  # these modules' stores run on both

PASSWORD = "antispam-password"


@pytest.fixture
async def spam_server(
    config_factory: Callable[..., ServerConfig], request: pytest.FixtureRequest
) -> AsyncIterator[RunningServer]:
    options = request.param
    running = await start(config_factory(hosts={"localhost": {"modules": {"antispam": options}}}))
    for user in ("victim", "mallory", "carol"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def online(server: RunningServer, jid: str) -> ClientXMPP:
    client = await login(server, jid, PASSWORD)
    client.roster.auto_authorize = None
    client.roster.auto_subscribe = False
    client.send_presence()
    await client.get_roster(timeout=5)
    return client


async def round_trip(*clients: ClientXMPP) -> None:
    for client in clients:
        await client.plugin["xep_0199"].ping(jid="localhost", timeout=5)


@pytest.mark.parametrize("spam_server", [{"strangers": "quarantine"}], indirect=True)
async def test_strangers_are_held_until_added_and_replies_pass(spam_server: RunningServer) -> None:
    victim = await online(spam_server, "victim@localhost/v")
    mallory = await online(spam_server, "mallory@localhost/m")
    carol = await online(spam_server, "carol@localhost/c")
    try:
        got: list[str] = []
        victim.add_event_handler("message", lambda m: got.append(str(m["body"])))
        errors: list[str] = []
        mallory.add_event_handler("message_error", lambda m: errors.append("error"))
        mallory.send_message(mto="victim@localhost", mbody="buy now", mtype="chat")
        await round_trip(mallory, victim)
        assert got == []
        assert errors == []  # held, not bounced: the stranger learns nothing

        # A reply is not spam: victim writes to carol first, carol's answer arrives.
        victim.send_message(mto="carol@localhost", mbody="hello?", mtype="chat")
        await round_trip(victim)
        carol.send_message(mto="victim@localhost", mbody="hi back", mtype="chat")
        await round_trip(carol, victim)
        assert got == ["hi back"]

        # Adding mallory to the roster releases what was held.
        released = asyncio.ensure_future(victim.wait_until("message", timeout=5))
        await victim.update_roster("mallory@localhost", name="Mallory")
        assert (await released)["body"] == "buy now"
    finally:
        for client in (victim, mallory, carol):
            await close(client)


@pytest.mark.parametrize("spam_server", [{"strangers": "refuse"}], indirect=True)
async def test_strangers_refused_like_a_missing_account(spam_server: RunningServer) -> None:
    victim = await online(spam_server, "victim@localhost/v")
    mallory = await online(spam_server, "mallory@localhost/m")
    try:
        asked: list[str] = []
        victim.add_event_handler("presence_subscribe", lambda p: asked.append(str(p["from"])))
        bounced = asyncio.ensure_future(mallory.wait_until("message_error", timeout=5))
        mallory.send_message(mto="victim@localhost", mbody="buy now", mtype="chat")
        assert (await bounced)["error"]["condition"] == "service-unavailable"
        mallory.send_presence(pto="victim@localhost", ptype="subscribe")
        await round_trip(mallory, victim)
        assert asked == []
    finally:
        await close(victim)
        await close(mallory)


@pytest.mark.parametrize("spam_server", [{"max_subscription_requests": 3}], indirect=True)
async def test_outgoing_subscription_requests_are_capped(spam_server: RunningServer) -> None:
    mallory = await online(spam_server, "mallory@localhost/m")
    try:
        errors: list[str] = []
        mallory.add_event_handler(
            "presence_error",
            lambda p: errors.append(str(p)),  # slixmpp predates RFC 6120's
        )
        for n in range(5):
            mallory.send_presence(pto=f"target{n}@localhost", ptype="subscribe")
        await round_trip(mallory)
        assert len(errors) == 2  # policy-violation: slixmpp does not parse that condition
        assert all("<policy-violation " in e for e in errors)
    finally:
        await close(mallory)


@pytest.mark.parametrize("spam_server", [{}], indirect=True)
async def test_report_with_block_reaches_the_admin(
    spam_server: RunningServer, tmp_path: Path
) -> None:
    victim = await online(spam_server, "victim@localhost/v")
    try:
        info = await victim.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
        assert "urn:xmpp:reporting:1" in info["disco_info"]["features"]
        iq = victim.make_iq_set()
        iq.append(
            ET.fromstring(
                "<block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'>"
                "<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>"
                "<stanza-id xmlns='urn:xmpp:sid:0' by='victim@localhost' id='m-1'/>"
                "<text xml:lang='en'>unsolicited ads</text></report></item></block>"
            )
        )
        await iq.send(timeout=5)
        bad = victim.make_iq_set()
        bad.append(
            ET.fromstring(
                "<block xmlns='urn:xmpp:blocking'><item jid='carol@localhost'>"
                "<report xmlns='urn:xmpp:reporting:1'/></item></block>"
            )
        )
        with pytest.raises(IqError) as refused:
            await bad.send(timeout=5)
        assert refused.value.condition == "bad-request"  # a report must give a reason
    finally:
        await close(victim)

    config = tmp_path / "heron.toml"
    server_config = spam_server.server.config
    config.write_text(CONFIG.format(data=server_config.data_dir) + storage_of(server_config))
    done = await asyncio.to_thread(heron, config, "reports")
    assert done.returncode == 0, done.stderr
    assert "victim@localhost reported mallory@localhost (urn:xmpp:reporting:spam)" in done.stdout
    assert "unsolicited ads" in done.stdout
    assert "m-1" in done.stdout
    assert "carol" not in done.stdout
