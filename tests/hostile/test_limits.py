"""Floods, slow loris and brute force: each attack meets its limit, an innocent client is
still served."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Callable

import pytest

from heron.app import RunningServer, start
from heron.config import LimitsConfig, ServerConfig
from heron.jid import JID
from tests.hostile.test_xml_attacks import condition_of
from tests.integration.clients import close, login
from tests.rawclient import RawClient

PASSWORD = "limits-tests-pw"
ATTACKER = "127.0.0.2"  # the innocent client connects from 127.0.0.1


@pytest.fixture
async def guarded(
    config_factory: Callable[..., ServerConfig], request: pytest.FixtureRequest
) -> AsyncIterator[RunningServer]:
    limits = getattr(request, "param", {})
    running = await start(config_factory(limits=limits))
    for user in ("victim", "mallory"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def innocent_is_served(server: RunningServer) -> None:
    client = await login(server, "victim@localhost/home", PASSWORD)
    try:
        assert await client.plugin["xep_0199"].ping(jid="localhost", timeout=5) >= 0
    finally:
        await close(client)


async def connect_from(address: str, port: int) -> RawClient:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    return RawClient(reader, writer)


async def test_a_thousand_connections_from_one_address(guarded: RunningServer) -> None:
    port = guarded.ports["c2s"]
    opened: list[RawClient] = []
    try:
        for _ in range(1000):
            with contextlib.suppress(ConnectionError, OSError):
                opened.append(await connect_from(ATTACKER, port))
        await asyncio.sleep(0.2)
        held = sum(len(listener.streams) for listener in guarded.listeners)
        assert held <= 20  # limits.max_unauthenticated_per_ip
        # The refused ones were hung up on at once.
        refused = 0
        for raw in opened:
            with contextlib.suppress(ConnectionError, TimeoutError):
                if await raw.reader.read(1) == b"":
                    refused += 1
                continue
            refused += 1
        assert refused >= 1000 - 20
        await innocent_is_served(guarded)
    finally:
        for raw in opened:
            raw.close()


@pytest.mark.parametrize(
    "guarded", [{"stanzas_per_s": 100, "stanzas_burst": 100, "max_backlog_s": 3}], indirect=True
)
async def test_a_stanza_flood_is_slowed_then_cut_off(guarded: RunningServer) -> None:
    ca = guarded.certificates["localhost"]
    paced = RawClient(*await asyncio.open_connection("127.0.0.1", guarded.ports["c2s"]))
    try:
        await paced.login(ca, "mallory", PASSWORD, resource="paced")
        started = time.monotonic()
        headline = "<message to='victim@localhost' type='headline'><body>x</body></message>"
        await paced.send(
            headline * 250 + "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        await paced.expect(r"id=.p1.", timeout=10)
        # 250 over a burst of 100 at 100/s: read at least ~1.5 s later, not dropped.
        assert time.monotonic() - started >= 1.2
    finally:
        paced.close()

    flood = RawClient(*await asyncio.open_connection("127.0.0.1", guarded.ports["c2s"]))
    try:
        await flood.login(ca, "mallory", PASSWORD, resource="flood")
        with contextlib.suppress(ConnectionError):
            await flood.send(headline * 20_000)
        assert condition_of(await flood.closed(timeout=15)) == "policy-violation"
    finally:
        flood.close()
    await innocent_is_served(guarded)


async def test_the_default_stanza_rate_is_a_persons_not_a_floods(guarded: RunningServer) -> None:
    """Default limits: a login with its catch-up (450 stanzas) goes through at once; past
    that a session is read at no more than a person's pace (50/s at the very most; the
    default is 20/s, docs/security.md), slowed but not cut off."""
    paced = RawClient(*await asyncio.open_connection("127.0.0.1", guarded.ports["c2s"]))
    headline = "<message to='victim@localhost' type='headline'><body>x</body></message>"

    async def send_then_ping(count: int, ping_id: str) -> float:
        started = time.monotonic()
        ping = f"<iq type='get' id='{ping_id}'><ping xmlns='urn:xmpp:ping'/></iq>"
        await paced.send(headline * count + ping)
        await paced.expect(rf"id=.{ping_id}.", timeout=LimitsConfig().max_backlog_s)
        return time.monotonic() - started

    try:
        await paced.login(guarded.certificates["localhost"], "mallory", PASSWORD)
        assert await send_then_ping(450, "login") < 2.0  # the burst: no waiting
        assert await send_then_ping(150, "flood") >= 2.0  # ~100 over it, at <= 50/s
    finally:
        paced.close()
    await innocent_is_served(guarded)


@pytest.mark.parametrize("guarded", [{"stanza_timeout_s": 1.0}], indirect=True)
@pytest.mark.parametrize(
    "trickle",
    ["<message to='victim@localhost'><body>", "<message to='victim@localhost'"],
    ids=["open-element", "half-a-tag"],
)
async def test_slow_loris_stanza_is_cut_off(guarded: RunningServer, trickle: str) -> None:
    raw = RawClient(*await asyncio.open_connection("127.0.0.1", guarded.ports["c2s"]))
    try:
        await raw.login(guarded.certificates["localhost"], "mallory", PASSWORD)
        await raw.send(trickle)

        async def drip() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                for _ in range(30):  # one byte every 0.2 s: never idle, never finished
                    await asyncio.sleep(0.2)
                    await raw.send(" " if trickle.endswith("'") else "x")

        dripping = asyncio.ensure_future(drip())
        try:
            assert condition_of(await raw.closed(timeout=4)) == "connection-timeout"
        finally:
            dripping.cancel()
    finally:
        raw.close()
    await innocent_is_served(guarded)


async def plain_attempt(server: RunningServer, user: str, password: str, address: str) -> str:
    """One SASL PLAIN attempt on a fresh connection; returns the answer's element name."""
    raw = await connect_from(address, server.ports["c2s"])
    try:
        await raw.starttls(server.certificates["localhost"])
        await raw.open_stream()
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await raw.send(
            f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        )
        answer = await raw.expect(r"<success|<failure[^>]*>\s*<([a-z-]+)", timeout=10)
        return answer.group(1) or "success"
    finally:
        raw.close()


@pytest.mark.parametrize(
    "guarded",
    [{"auth_block_after": 6, "auth_max_delay_s": 0.3, "new_connections_per_ip_burst": 100}],
    indirect=True,
)
async def test_brute_force_is_slowed_then_blocked(guarded: RunningServer) -> None:
    answers = []
    timings = []
    for n in range(6):
        started = time.monotonic()
        answers.append(await plain_attempt(guarded, "victim", f"guess-{n}", ATTACKER))
        timings.append(time.monotonic() - started)
    assert answers == ["not-authorized"] * 6
    assert max(timings[:5]) < 1.0  # five typos are answered at once ...
    assert timings[5] >= 0.3  # ... then attempts wait before the verdict
    # Blocked: even the right password is refused for that account from that address ...
    assert await plain_attempt(guarded, "victim", PASSWORD, ATTACKER) == "temporary-auth-failure"
    # ... but the account's owner elsewhere still gets in (names are slowed, never locked),
    assert await plain_attempt(guarded, "victim", PASSWORD, "127.0.0.3") == "success"
    # and so does another user behind the attacker's address (a carrier NAT).
    assert await plain_attempt(guarded, "mallory", PASSWORD, ATTACKER) == "success"
    await innocent_is_served(guarded)


def legacy_client_context(newest: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer old protocols at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = newest
    return context


async def test_tls_before_1_2_is_refused(guarded: RunningServer) -> None:
    port = guarded.ports["c2s_tls"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = legacy_client_context(ssl.TLSVersion.TLSv1_1)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection("127.0.0.1", port, ssl=old, server_hostname="localhost")
    # The same client allowed TLS 1.2 gets through: the version alone was refused.
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        port,
        ssl=legacy_client_context(ssl.TLSVersion.TLSv1_2),
        server_hostname="localhost",
    )
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
    writer.close()
    await innocent_is_served(guarded)
