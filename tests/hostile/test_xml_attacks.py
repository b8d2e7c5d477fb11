"""Each attack ends only the offending stream, with the right stream error (RFC 6120 §4.9),
while a second, innocent client keeps exchanging stanzas."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable

import pytest
from slixmpp import ClientXMPP

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login
from tests.rawclient import RawClient

PASSWORD = "hostile-tests-pw"


@pytest.fixture
async def bystander(server: RunningServer) -> AsyncIterator[ClientXMPP]:
    for user in ("victim", "mallory"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    client = await login(server, "victim@localhost/home", PASSWORD)
    try:
        yield client
    finally:
        await close(client)


async def assert_still_served(client: ClientXMPP) -> None:
    assert await client.plugin["xep_0199"].ping(jid="localhost", timeout=5) >= 0


async def attack(server: RunningServer, payload: bytes, *, after_login: bool) -> str:
    raw = await RawClient.connect(server.ports["c2s"])
    try:
        if after_login:
            await raw.login(server.certificates["localhost"], "mallory", PASSWORD)
        else:
            await raw.starttls(server.certificates["localhost"])
            await raw.open_stream()
        with contextlib.suppress(ConnectionError):
            await raw.send(payload)  # the server may hang up before it has all of it
        return await raw.closed()
    finally:
        raw.close()


def condition_of(output: str) -> str:
    match = re.search(
        r"<stream:error>\s*<([a-z-]+) xmlns=.urn:ietf:params:xml:ns:xmpp-streams.", output
    )
    assert match, f"no stream error in {output[-500:]!r}"
    return match.group(1)


BILLION_LAUGHS = (
    b"<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>"
    b"<message><body>&lol2;</body></message>"
)

ATTACKS = {
    "malformed": (b"<message><body>oops</message>", "not-well-formed"),
    "dtd": (b"<!DOCTYPE foo [<!ELEMENT foo ANY>]><message/>", "restricted-xml"),
    "entity-declaration": (BILLION_LAUGHS, "restricted-xml"),
    "external-entity": (
        b"<!DOCTYPE m [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><message>&x;</message>",
        "restricted-xml",
    ),
    "undeclared-entity": (b"<message><body>&foo;</body></message>", "restricted-xml"),
    "comment": (b"<message><!-- hi --></message>", "restricted-xml"),
    "processing-instruction": (b"<message><?evil data?></message>", "restricted-xml"),
    "huge-stanza": (
        b"<message><body>" + b"A" * (1024 * 1024) + b"</body></message>",
        "policy-violation",
    ),
    "ten-megabyte-text": (
        b"<message><body>" + b"A" * (10 * 1024 * 1024) + b"</body></message>",
        "policy-violation",
    ),
    "many-attributes": (
        b"<message " + b" ".join(b"a%d='x'" % i for i in range(100_000)) + b"/>",
        "policy-violation",
    ),
    "deep-nesting": (b"<a>" * 10_000, "policy-violation"),
    "invalid-utf8": (b"<message><body>\xff\xfe\xc3\x28</body></message>", "not-well-formed"),
    "illegal-char-ref": (b"<message><body>&#1;</body></message>", "not-well-formed"),
}


@pytest.mark.parametrize("after_login", [False, True], ids=["before-auth", "after-auth"])
@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_ends_only_offending_stream(
    server: RunningServer, bystander: ClientXMPP, name: str, after_login: bool
) -> None:
    payload, expected = ATTACKS[name]
    output = await attack(server, payload, after_login=after_login)
    assert condition_of(output) == expected
    assert output.rstrip().endswith("</stream:stream>")
    await assert_still_served(bystander)


async def test_spoofed_from_is_refused(server: RunningServer, bystander: ClientXMPP) -> None:
    payload = (
        b"<message from='victim@localhost/home' to='victim@localhost'><body>x</body></message>"
    )
    output = await attack(server, payload, after_login=True)
    assert condition_of(output) == "invalid-from"
    await assert_still_served(bystander)


async def test_stanza_before_auth_is_not_authorized(
    server: RunningServer, bystander: ClientXMPP
) -> None:
    output = await attack(server, b"<message to='victim@localhost'/>", after_login=False)
    assert condition_of(output) == "not-authorized"
    await assert_still_served(bystander)


async def test_auth_before_starttls_is_refused(server: RunningServer) -> None:
    raw = await RawClient.connect(server.ports["c2s"])
    try:
        features = await raw.open_stream()
        assert "<required" in features
        assert "PLAIN" not in features
        assert "SCRAM" not in features
        await raw.send(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"
        )
        await raw.expect(r"<failure[^>]*><encryption-required/>")
    finally:
        raw.close()


async def test_silent_and_slow_connections_are_timed_out(
    config_factory: Callable[..., ServerConfig],
) -> None:
    config = config_factory(limits={"header_timeout_s": 0.5, "auth_timeout_s": 1.0})
    running = await start(config)
    try:
        silent = await RawClient.connect(running.ports["c2s"])
        assert condition_of(await silent.closed()) == "connection-timeout"
        silent.close()
        dawdler = await RawClient.connect(running.ports["c2s"])
        await dawdler.open_stream()  # a header, but never a login
        assert condition_of(await dawdler.closed()) == "connection-timeout"
        dawdler.close()
    finally:
        await running.stop()
