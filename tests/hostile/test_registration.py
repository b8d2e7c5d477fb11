"""Registration abuse over real sockets: floods are throttled per address, invitation-only
servers take no account without a token from `heron invite`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from heron.app import RunningServer, start
from heron.config import ServerConfig, load_config
from heron.jid import JID
from heron.modules import AVAILABLE
from tests.integration.clients import close, login
from tests.integration.test_cli import CONFIG, heron
from tests.rawclient import RawClient

PASSWORD = "registration-tests-pw"


async def registering(server: RunningServer) -> RawClient:
    raw = await RawClient.connect(server.ports["c2s"])
    await raw.starttls(server.certificates["localhost"])
    return raw


async def register(raw: RawClient, username: str, n: int) -> str:
    """One XEP-0077 registration on an open stream; the answer's error condition or 'ok'."""
    await raw.send(
        f"<iq type='set' id='r{n}'><query xmlns='jabber:iq:register'>"
        f"<username>{username}</username><password>{PASSWORD}</password></query></iq>"
    )
    answer = await raw.expect(rf"<iq [^>]*id=.r{n}.[^>]*(/>|>.*?</iq>)")
    condition = re.search(r"<([a-z-]+) xmlns=.urn:ietf:params:xml:ns:xmpp-stanzas.", answer[0])
    return condition.group(1) if condition else "ok"


async def test_registration_flood_is_throttled_per_address(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory(
        hosts={"localhost": {"modules": {"register": {"allow_registration": True}}}}
    )
    running = await start(config)
    try:
        await running.server.accounts.create(JID.parse("victim@localhost"), PASSWORD)
        raw = await registering(running)
        try:
            await raw.open_stream()
            answers = [await register(raw, f"bot{n}", n) for n in range(10)]
        finally:
            raw.close()
        assert answers == ["ok"] * 3 + ["resource-constraint"] * 7
        assert not await running.server.accounts.exists(JID.parse("bot3@localhost"))
        innocent = await login(running, "victim@localhost/v", PASSWORD)
        await close(innocent)
    finally:
        await running.stop()


INVITE_ONLY = """
[hosts.localhost.modules.register]
allow_registration = true
invitation_only = true
"""


async def test_invitation_only_registration_end_to_end(tmp_path: Path) -> None:
    config_path = tmp_path / "heron.toml"
    config_path.write_text(CONFIG.format(data=tmp_path / "data") + INVITE_ONLY)
    made = await asyncio.to_thread(heron, config_path, "invite", "localhost")
    assert made.returncode == 0, made.stderr
    token = re.search(r"token: (\S+)", made.stdout)
    assert token is not None
    assert f"xmpp:localhost?register;preauth={token.group(1)}" in made.stdout

    running = await start(load_config(config_path, known_modules=AVAILABLE))
    try:
        raw = await registering(running)
        try:
            features = await raw.open_stream()
            assert "urn:xmpp:ibr-token:0" in features
            assert await register(raw, "gatecrasher", 1) == "not-allowed"
            await raw.send(
                "<iq type='set' id='t1'><preauth xmlns='urn:xmpp:pars:0' token='wrong'/></iq>"
            )
            assert "item-not-found" in (await raw.expect(r"<iq [^>]*id=.t1.[^>]*>.*?</iq>"))[0]
            await raw.send(
                "<iq type='set' id='t2'><preauth xmlns='urn:xmpp:pars:0' "
                f"token='{token.group(1)}'/></iq>"
            )
            assert "result" in (await raw.expect(r"<iq [^>]*id=.t2.[^>]*/>"))[0]
            assert await register(raw, "invited", 2) == "ok"
        finally:
            raw.close()
        client = await login(running, "invited@localhost/new", PASSWORD)
        await close(client)
    finally:
        await running.stop()
