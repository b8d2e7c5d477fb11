"""XEP-0215 §3.2 pushes: a resource that asked for the STUN/TURN list is told what changed
when the configuration changes (add, delete, modify, new credentials with a new secret), and
fresh TURN credentials before its old ones expire; a resource that never asked, or is gone,
gets nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from heron.app import RunningServer, start
from heron.config import ConfigError, ServerConfig
from heron.jid import JID
from tests.rawclient import RawClient

PASSWORD = "extdisco-password"
EXTDISCO = "urn:xmpp:extdisco:2"
OPTIONS = {
    "services": ["stun:stun.example.org", "turn:turn.example.org:3478"],
    "secret": "first-secret",
}


@pytest.fixture
async def server(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    running = await start(config_factory(hosts={"localhost": {"modules": {"extdisco": OPTIONS}}}))
    for user in ("ivy", "jon"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


def module(server: RunningServer) -> Any:
    return server.server.managers["localhost"].modules["extdisco"]


async def client(server: RunningServer, user: str) -> RawClient:
    raw = await RawClient.connect(server.ports["c2s"])
    await raw.login(server.certificates["localhost"], user, PASSWORD, "phone")
    return raw


async def ask(raw: RawClient, type_: str = "") -> str:
    kind = f" type='{type_}'" if type_ else ""
    await raw.send(
        f"<iq type='get' id='s1' to='localhost'><services xmlns='{EXTDISCO}'{kind}/></iq>"
    )
    return (await raw.expect(r"<iq [^>]*id=.s1.[^>]*>.*?</iq>"))[0]


def service(push: str, host: str) -> str:
    found = re.search(rf"<service [^>]*host=.{re.escape(host)}.[^>]*/>", push)
    assert found is not None, push
    return found[0]


async def test_changes_are_pushed_to_resources_that_asked(
    server: RunningServer, config_factory: Callable[..., ServerConfig]
) -> None:
    ivy, jon = await client(server, "ivy"), await client(server, "jon")
    try:
        first = await ask(ivy)
        old_password = re.search(r"password=.([^'\"]+)", service(first, "turn.example.org"))
        assert old_password is not None
        # A configuration reload with new options: the module takes them in place.
        changed = {
            "services": ["turn:turn.example.org:3478", "turns:relay.example.org"],
            "secret": "second-secret",
        }
        new = config_factory(hosts={"localhost": {"modules": {"extdisco": changed}}})
        running_module = module(server)
        old_host, new_host = server.server.config.host("localhost"), new.host("localhost")
        assert old_host is not None
        assert new_host is not None
        assert await server.server.reload_modules(old_host, new_host) == ["extdisco"]
        assert module(server) is running_module  # not restarted: it knows who asked
        push = (await ivy.expect(r"<iq [^>]*type=.set.[^>]*>.*?</iq>"))[0]
        assert re.search(r"to=.ivy@localhost/phone.", push)
        assert 'action="delete"' in service(push, "stun.example.org")
        assert 'action="add"' in service(push, "relay.example.org")
        modified = service(push, "turn.example.org")
        assert 'action="modify"' in modified  # the secret changed: new credentials
        assert old_password[1] not in modified
        assert 'username="' in modified
        push_id = re.search(r"id=.([^'\"]+)", push)
        assert push_id is not None
        await ivy.send(f"<iq type='result' id='{push_id[1]}'/>")  # §3.2: answered
        # Jon never asked: nothing pushed to him (a ping answered proves the stream is idle).
        await jon.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        answer = await jon.expect(r"<iq [^>]*>")
        assert "p1" in answer[0]
        assert EXTDISCO not in jon.buffer
    finally:
        ivy.close()
        jon.close()


async def test_fresh_credentials_before_expiry_and_nothing_for_gone_resources(
    server: RunningServer,
) -> None:
    ivy = await client(server, "ivy")
    mod = module(server)
    try:
        await ask(ivy, "turn")
        (watcher,) = mod.watchers.values()
        assert watcher.refresh_at > 0  # credentials were issued: a refresh is planned
        watcher.refresh_at = 0.0  # as if 80 % of their lifetime had passed
        await mod.refresh()
        push = (await ivy.expect(r"<iq [^>]*type=.set.[^>]*>.*?</iq>"))[0]
        assert 'type="turn"' in push.replace("'", '"')
        assert 'action="modify"' in service(push, "turn.example.org")
        assert "stun.example.org" not in push  # it asked for TURN only
        # A bad configuration is refused and the old one stays.
        with pytest.raises(ConfigError):
            await mod.reconfigure({"services": ["http://nope"]})
        assert [s.host for s in mod.services] == ["stun.example.org", "turn.example.org"]
    finally:
        ivy.close()
    phone = JID.parse("ivy@localhost/phone")
    for _ in range(100):
        if server.server.sessions.get(phone) is None:
            break
        await asyncio.sleep(0.05)  # the server notices the closed socket on its own
    # Gone (it never sent presence, so no session/ended hook): the next change finds it
    # has no session and drops it instead of pushing (§3.2: no push without presence).
    await mod.reconfigure({"services": ["turn:turn.example.org:3478"], "secret": "x"})
    assert not mod.watchers
