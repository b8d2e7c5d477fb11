"""The server-to-server stream engines, sans-IO: what they write for dialback (XEP-0220).

Dialback elements go out with the ``db:`` prefix the stream header declares: ejabberd 23.01
ignores the same element written with a default namespace (<result xmlns='...dialback'/>).
"""

from __future__ import annotations

from heron import ns
from heron.stanza import Stanza
from heron.stream.s2s import S2SIncoming, S2SOutgoing
from heron.xmlstream import Element, ElementReceived, Limits, StreamParser, serialize
from tests.harness import MemoryLink

OURS = "heron.example"
THEIRS = "peer.example"
PEER_HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='{from_}' to='{to}' id='{id}' version='1.0'>"
)
TLS_FEATURES = (
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
    "</starttls></stream:features>"
)
DIALBACK_FEATURES = (
    "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
    "</stream:features>"
)


class FakeHost:
    limits = Limits()

    def serves_domain(self, domain: str) -> bool:
        return domain == OURS

    def dialback_allowed(self, domain: str) -> bool:
        return True

    def dialback_key(self, receiving: str, originating: str, stream_id: str) -> str:
        return f"key-{receiving}-{originating}-{stream_id}"

    def peer_certificate_names(self, stream: S2SIncoming) -> bool:
        return False

    def certificate_matches(self, stream: S2SIncoming, domain: str) -> bool:
        return False

    async def verify_dialback(
        self, receiving: str, originating: str, stream_id: str, key: str
    ) -> bool:
        return True

    async def remote_stanza(self, stanza: Stanza) -> None:
        pass

    def offers_bidi(self) -> bool:
        return False

    def adopt_route(self, local: str, remote: str, stream: S2SIncoming) -> None:
        pass


def parsed(written: str) -> list[Element]:
    """The top-level elements of what a stream wrote, read by a namespace-aware parser."""
    events = StreamParser().feed(written.encode())
    return [e.element for e in events if isinstance(e, ElementReceived)]


def test_prefixed_serialization_is_the_same_element() -> None:
    result = Element("result", ns.DIALBACK, {"from": OURS, "to": THEIRS}, ["k"])
    result.add("error", ns.SERVER, {"type": "cancel"}).add("item-not-found", ns.STANZAS_ERRORS)
    text = serialize(result, ns.SERVER, {ns.DIALBACK: "db"})
    assert text.startswith(f'<db:result from="{OURS}" to="{THEIRS}">k<error type="cancel">')
    assert "jabber:server:dialback" not in text  # the header declares it
    header = PEER_HEADER.format(from_=OURS, to=THEIRS, id="x")
    (back,) = parsed(header + text)
    assert (back.ns, back.tag, back.attrs, back.text) == (ns.DIALBACK, "result", result.attrs, "k")
    error = back.find("error", ns.SERVER)
    assert error is not None
    assert error.find("item-not-found", ns.STANZAS_ERRORS) is not None
    # Elements in other namespaces are untouched by the map.
    ping = Element("iq", ns.CLIENT, {"type": "get"})
    assert serialize(ping, ns.CLIENT, {ns.DIALBACK: "db"}) == serialize(ping, ns.CLIENT)


async def test_outgoing_stream_asks_with_a_prefixed_db_result() -> None:
    link = MemoryLink()
    stream = S2SOutgoing(FakeHost(), link, OURS, THEIRS, use_external=False)
    stream.start()
    header = link.take()
    assert "xmlns:db='jabber:server:dialback'" in header
    await stream.receive(
        (PEER_HEADER.format(from_=THEIRS, to=OURS, id="s1") + TLS_FEATURES).encode()
    )
    assert "<starttls" in link.take()
    await stream.receive(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    link.take()  # the new header, after TLS
    await stream.receive(
        (PEER_HEADER.format(from_=THEIRS, to=OURS, id="s2") + DIALBACK_FEATURES).encode()
    )
    written = link.take()
    assert written == f'<db:result from="{OURS}" to="{THEIRS}">key-{THEIRS}-{OURS}-s2</db:result>'
    (result,) = parsed(header + written)
    assert (result.ns, result.tag) == (ns.DIALBACK, "result")

    # The peer's answer, prefixed as servers write it, completes the stream.
    await stream.receive(f"<db:result from='{THEIRS}' to='{OURS}' type='valid'/>".encode())
    assert stream.ready.done()
    assert stream.method == "dialback"


async def test_incoming_stream_answers_with_prefixed_db_elements() -> None:
    link = MemoryLink()
    stream = S2SIncoming(FakeHost(), link, is_tls=True)
    await stream.receive(
        PEER_HEADER.format(from_=THEIRS, to=OURS, id="").replace(" id=''", "").encode()
    )
    opened = link.take()

    # db:verify about a key we issued: answered at once.
    key = f"key-{THEIRS}-{OURS}-abc"
    await stream.receive(
        f"<db:verify from='{THEIRS}' to='{OURS}' id='abc'>{key}</db:verify>".encode()
    )
    answer = link.take()
    assert answer == f'<db:verify from="{OURS}" to="{THEIRS}" id="abc" type="valid"/>'

    # db:result: checked with the authoritative server, then answered.
    await stream.receive(f"<db:result from='{THEIRS}' to='{OURS}'>k</db:result>".encode())
    for task in list(stream.tasks):
        await task
    written = link.take()
    assert written == f'<db:result from="{OURS}" to="{THEIRS}" type="valid"/>'
    result = parsed(opened + written)[-1]  # after the stream features
    assert (result.ns, result.tag, result.attrs["type"]) == (ns.DIALBACK, "result", "valid")
    assert (THEIRS, OURS) in stream.authenticated
