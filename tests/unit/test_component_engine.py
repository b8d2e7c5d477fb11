"""The XEP-0114 component stream engine, sans-IO: bytes in, bytes and host calls out."""

from __future__ import annotations

import re

import pytest

from heron.config import ComponentConfig
from heron.core.components import ComponentManager
from heron.jid import JID
from heron.stanza import Stanza, StanzaError
from heron.stream.component import ComponentStream, handshake_digest
from heron.xmlstream import Element, Limits
from tests.harness import MemoryLink

DOMAIN = "gw.example.org"
SECRET = "sixteen-chars-secret"
HEADER = (
    b"<stream:stream xmlns='jabber:component:accept' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='%s'>"
)


class FakeHost:
    limits = Limits()
    pre_auth_limits = Limits(max_stanza_bytes=4096)
    out_queue_bytes = 1 << 20

    def __init__(self, *, replace: bool = False) -> None:
        self.manager = ComponentManager([ComponentConfig(DOMAIN, SECRET, replace)])
        self.stanzas: list[Stanza] = []

    def component_secret(self, domain: str) -> str | None:
        return self.manager.secret(domain)

    def component_connected(self, stream: ComponentStream) -> None:
        self.manager.attach(stream)

    async def component_stanza(self, stream: ComponentStream, stanza: Stanza) -> None:
        self.stanzas.append(stanza)

    def component_ended(self, stream: ComponentStream) -> None:
        self.manager.detach(stream)


def stream_id(text: str) -> str:
    match = re.search(r"id='([^']+)'", text)
    assert match is not None, text
    return match.group(1)


async def opened(host: FakeHost, domain: str = DOMAIN) -> tuple[ComponentStream, MemoryLink]:
    link = MemoryLink()
    stream = ComponentStream(host, link)
    await stream.receive(HEADER % domain.encode())
    return stream, link


async def connected(host: FakeHost) -> tuple[ComponentStream, MemoryLink]:
    stream, link = await opened(host)
    digest = handshake_digest(stream_id(link.take()), SECRET)
    await stream.receive(b"<handshake>%s</handshake>" % digest.encode())
    assert link.take() == "<handshake/>"
    return stream, link


def test_handshake_digest_is_hex_sha1_of_id_then_secret() -> None:
    # FIPS 180 test vector: SHA-1("abc"), split into a stream id "ab" and a secret "c".
    assert handshake_digest("ab", "c") == "a9993e364706816aba3e25717850c26c9cd0d89d"


async def test_header_answered_with_a_stream_id_and_domain() -> None:
    host = FakeHost()
    _stream, link = await opened(host)
    out = link.take()
    assert "xmlns='jabber:component:accept'" in out
    assert f"from='{DOMAIN}'" in out
    # XEP-0114 streams have no version (and no features).
    assert " version=" not in out.split("?>", 1)[1]


async def test_good_handshake_routes_the_domain() -> None:
    host = FakeHost()
    stream, _link = await connected(host)
    assert host.manager.connected[DOMAIN] is stream


async def test_bad_handshake_is_not_authorized() -> None:
    host = FakeHost()
    stream, link = await opened(host)
    link.take()
    await stream.receive(b"<handshake>%s</handshake>" % b"0" * 40)
    assert "<not-authorized" in link.take()
    assert stream.is_closed
    assert link.closed
    assert DOMAIN not in host.manager.connected


async def test_unknown_domain_and_wrong_namespace() -> None:
    host = FakeHost()
    stream, link = await opened(host, "other.example.org")
    assert "<host-unknown" in link.take()
    assert stream.is_closed
    link = MemoryLink()
    stream = ComponentStream(host, link)
    await stream.receive(HEADER.replace(b"jabber:component:accept", b"jabber:client") % b"x")
    assert "<invalid-namespace" in link.take()


async def test_stanza_before_handshake_is_refused() -> None:
    host = FakeHost()
    stream, link = await opened(host)
    await stream.receive(b"<message from='a@%s' to='u@example.org'/>" % DOMAIN.encode())
    assert "<not-authorized" in link.take()
    assert host.stanzas == []


async def test_stanzas_from_the_domain_are_passed_on_in_jabber_client() -> None:
    host = FakeHost()
    stream, _link = await connected(host)
    await stream.receive(
        b"<message from='bot@%s/r' to='u@example.org'><body>hi</body></message>" % DOMAIN.encode()
    )
    (stanza,) = host.stanzas
    assert stanza.from_ == JID.parse(f"bot@{DOMAIN}/r")
    assert stanza.element.ns == "jabber:client"
    assert stanza.element.child_text("body", "jabber:client") == "hi"


@pytest.mark.parametrize(
    ("stanza", "condition"),
    [
        (b"<message from='x@example.org' to='u@example.org'/>", "invalid-from"),
        (b"<message to='u@example.org'/>", "improper-addressing"),
        (b"<message from='x@gw.example.org'/>", "improper-addressing"),
        (b"<foo xmlns='urn:other' from='x@gw.example.org' to='u@example.org'/>", "invalid-"),
    ],
)
async def test_bad_stanzas_end_the_stream(stanza: bytes, condition: str) -> None:
    host = FakeHost()
    stream, link = await connected(host)
    await stream.receive(stanza)
    assert f"<{condition}" in link.take()
    assert stream.is_closed
    assert DOMAIN not in host.manager.connected  # the route went with it


async def test_malformed_to_is_a_stanza_error_only() -> None:
    host = FakeHost()
    stream, link = await connected(host)
    await stream.receive(b"<message from='x@%s' to='a@b@c'/>" % DOMAIN.encode())
    assert "jid-malformed" in link.take()
    assert not stream.is_closed


async def test_deliver_writes_in_the_component_namespace() -> None:
    host = FakeHost()
    _stream, link = await connected(host)
    message = Element("message", "jabber:client", {"to": f"x@{DOMAIN}", "from": "u@example.org"})
    message.add("body", "jabber:client", text="hello")
    host.manager.send(Stanza(message, JID.parse(f"x@{DOMAIN}"), JID.parse("u@example.org")))
    out = link.take()
    assert out.startswith("<message ")
    assert "<body>hello</body>" in out
    assert "xmlns=" not in out  # the stream's default namespace


async def test_second_connection_conflict_or_replace() -> None:
    host = FakeHost()
    first, _ = await connected(host)
    second, link = await opened(host)
    digest = handshake_digest(stream_id(link.take()), SECRET)
    await second.receive(b"<handshake>%s</handshake>" % digest.encode())
    assert "<conflict" in link.take()
    assert host.manager.connected[DOMAIN] is first

    host = FakeHost(replace=True)
    first, first_link = await connected(host)
    second, link = await opened(host)
    digest = handshake_digest(stream_id(link.take()), SECRET)
    await second.receive(b"<handshake>%s</handshake>" % digest.encode())
    assert link.take() == "<handshake/>"
    assert "<conflict" in first_link.take()
    assert first.is_closed
    assert host.manager.connected[DOMAIN] is second


def test_offline_component_is_service_unavailable() -> None:
    manager = ComponentManager([ComponentConfig(DOMAIN, SECRET)])
    stanza = Stanza(Element("message", "jabber:client"), JID.parse(DOMAIN), JID.parse("u@x.org"))
    with pytest.raises(StanzaError) as err:
        manager.send(stanza)
    assert err.value.condition == "service-unavailable"


async def test_oversized_handshake_stage_input_is_refused() -> None:
    host = FakeHost()
    stream, link = await opened(host)
    await stream.receive(b"<handshake>" + b"a" * 40000 + b"</handshake>")
    assert "<policy-violation" in link.take()
    assert stream.is_closed
