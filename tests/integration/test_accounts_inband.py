"""Channel binding, in-band registration and password change with slixmpp."""

from __future__ import annotations

import asyncio
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from slixmpp import ClientXMPP

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from heron.stream.c2s import C2SStream
from tests.integration.clients import LoginFailed, close, login, make_client
from tests.rawclient import RawClient

pytestmark = pytest.mark.both_engines  # every store this touches, on each engine


async def test_scram_plus_with_tls_unique_over_tls12(server: RunningServer) -> None:
    """slixmpp binds to tls-unique on TLS 1.2: SCRAM-SHA-256-PLUS must succeed end to end."""
    await server.server.accounts.create(JID.parse("plus@localhost"), "bound-pw")
    client = make_client(server, "plus@localhost/cb", "bound-pw", mech="SCRAM-SHA-256-PLUS")
    client.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
    started = asyncio.ensure_future(client.wait_until("session_start", timeout=10))
    client.connect("127.0.0.1", server.ports["c2s"])
    try:
        await started
        (stream,) = server.server.sessions.all()
        assert stream.jid == JID.parse("plus@localhost/cb")
        assert isinstance(stream, C2SStream)
        assert stream.mechanism == "SCRAM-SHA-256-PLUS"
        assert stream.tls is not None
        assert "tls-unique" in stream.tls.channel_bindings
    finally:
        await close(client)


async def test_legacy_session_iq_is_answered(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("old@localhost"), "old-client")
    client = await login(server, "old@localhost/legacy", "old-client")
    try:
        iq = client.make_iq_set()
        iq.append(ET.Element("{urn:ietf:params:xml:ns:xmpp-session}session"))
        reply = await iq.send(timeout=5)
        assert reply["type"] == "result"
    finally:
        await close(client)


async def register(server: RunningServer, user: str, password: str) -> str:
    """Register with slixmpp's XEP-0077 plugin before login; returns 'ok' or the error."""
    client = ClientXMPP(f"{user}@localhost", password)
    client.ca_certs = server.certificates["localhost"]
    client.enable_direct_tls = False
    client.auto_reconnect = False
    client.register_plugin("xep_0077")
    client.plugin["xep_0077"].force_registration = True
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_register(_form: object) -> None:
        iq = client.make_iq_set()
        iq["register"]["username"] = user
        iq["register"]["password"] = password
        try:
            await iq.send(timeout=5)
            result = "ok"
        except Exception as exc:  # the error condition is the result
            result = getattr(exc, "condition", repr(exc))
        if not outcome.done():
            outcome.set_result(result)
        client.disconnect()

    client.add_event_handler("register", on_register)
    client.add_event_handler(
        "disconnected", lambda _e: outcome.done() or outcome.set_result("disconnected")
    )
    client.connect("127.0.0.1", server.ports["c2s"])
    try:
        return await asyncio.wait_for(outcome, 10)
    finally:
        client.abort()


async def test_registration_is_off_by_default(server: RunningServer) -> None:
    assert await register(server, "newbie", "long-enough-pw") != "ok"
    assert not await server.server.accounts.exists(JID.parse("newbie@localhost"))


async def test_inband_registration_when_enabled(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory(
        hosts={"localhost": {"modules": {"register": {"allow_registration": True}}}}
    )
    running = await start(config)
    try:
        assert await register(running, "newbie", "long-enough-pw") == "ok"
        assert await register(running, "newbie", "other-password") == "conflict"
        client = await login(running, "newbie@localhost/first", "long-enough-pw")
        await close(client)
    finally:
        await running.stop()


async def test_password_change_in_band(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("changer@localhost"), "old-password")
    client = await login(server, "changer@localhost/x", "old-password")
    try:
        await client.plugin["xep_0077"].change_password("new-password", timeout=5)
    finally:
        await close(client)
    with pytest.raises(LoginFailed):
        await login(server, "changer@localhost/x", "old-password")
    again = await login(server, "changer@localhost/x", "new-password")
    await close(again)


async def test_account_removal_ends_its_sessions(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("leaver@localhost"), "leaving-pw")
    client = await login(server, "leaver@localhost/x", "leaving-pw")
    errors: list[str] = []
    client.add_event_handler("stream_error", lambda e: errors.append(e["condition"]))
    gone = asyncio.ensure_future(client.wait_until("disconnected", timeout=5))
    await client.plugin["xep_0077"].cancel_registration(timeout=5)
    await gone
    assert errors == ["not-authorized"]
    assert not await server.server.accounts.exists(JID.parse("leaver@localhost"))
    with pytest.raises(LoginFailed):
        await login(server, "leaver@localhost/x", "leaving-pw")


@pytest.mark.parametrize("module", [True, False], ids=["option-off", "module-off"])
async def test_registration_off_is_refused_at_once(
    config_factory: Callable[..., ServerConfig], module: bool
) -> None:
    """A client asking to register when it is off gets an error straight away, never silence
    (before login, XEP-0077 §3.1: service-unavailable)."""
    running = await start(config_factory(hosts={"localhost": {"modules": {"register": module}}}))
    try:
        await refused_at_once(running)
    finally:
        await running.stop()


async def refused_at_once(server: RunningServer) -> None:
    raw = await RawClient.connect(server.ports["c2s"])
    try:
        await raw.starttls(server.certificates["localhost"])
        features = await raw.open_stream()
        assert "http://jabber.org/features/iq-register" not in features
        for type_, query in (
            ("get", "<query xmlns='jabber:iq:register'/>"),
            (
                "set",
                "<query xmlns='jabber:iq:register'><username>newbie</username>"
                "<password>long-enough-pw</password></query>",
            ),
        ):
            started = time.monotonic()
            await raw.send(f"<iq type='{type_}' id='reg-{type_}'>{query}</iq>")
            answer = await raw.expect(rf"<iq[^>]*id=.reg-{type_}.[^>]*>.*?</iq>", timeout=2)
            assert 'type="error"' in answer[0] or "type='error'" in answer[0]
            assert "service-unavailable" in answer[0] or "not-allowed" in answer[0]
            assert time.monotonic() - started < 1.0
    finally:
        raw.close()
    assert not await server.server.accounts.exists(JID.parse("newbie@localhost"))
