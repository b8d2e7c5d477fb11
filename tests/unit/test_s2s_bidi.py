"""XEP-0288 bidirectional server streams, sans-IO: each MUST of §2 and §4 on both engines,
and the route manager taking a peer's stream instead of opening its own."""

from __future__ import annotations

import asyncio

from heron.core.s2s import S2SLimits, S2SManager
from heron.jid import JID
from heron.stanza import Stanza, StanzaError
from heron.stream.s2s import S2SIncoming, S2SOutgoing
from heron.xmlstream import Element, Limits
from tests.harness import MemoryLink

OURS = "heron.example"
THEIRS = "peer.example"
HEADER = (
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
    " xmlns:db='jabber:server:dialback' from='{from_}' to='{to}' {id} version='1.0'>"
)
BIDI = "<bidi xmlns='urn:xmpp:bidi'/>"
MESSAGE = "<message from='{from_}' to='{to}' type='chat'><body>hi</body></message>"


class Host:
    limits = Limits()

    def __init__(self) -> None:
        self.adopted: list[tuple[str, str, S2SIncoming]] = []
        self.received: list[Stanza] = []
        self.bidi = True

    def serves_domain(self, domain: str) -> bool:
        return domain == OURS

    def dialback_allowed(self, domain: str) -> bool:
        return True

    def dialback_key(self, receiving: str, originating: str, stream_id: str) -> str:
        return "key"

    def peer_certificate_names(self, stream: S2SIncoming) -> bool:
        return False

    def certificate_matches(self, stream: S2SIncoming, domain: str) -> bool:
        return False

    async def verify_dialback(
        self, receiving: str, originating: str, stream_id: str, key: str
    ) -> bool:
        return key == "good"

    async def remote_stanza(self, stanza: Stanza) -> None:
        self.received.append(stanza)

    def offers_bidi(self) -> bool:
        return self.bidi

    def adopt_route(self, local: str, remote: str, stream: S2SIncoming) -> None:
        self.adopted.append((local, remote, stream))


def chat(from_: str, to: str) -> Element:
    return Element("message", "jabber:client", {"from": from_, "to": to}, [])


async def incoming(host: Host, *, is_tls: bool = True) -> tuple[S2SIncoming, MemoryLink]:
    link = MemoryLink()
    stream = S2SIncoming(host, link, is_tls=is_tls)  # type: ignore[arg-type]
    await stream.receive(HEADER.format(from_=THEIRS, to=OURS, id="").encode())
    return stream, link


async def dialback(stream: S2SIncoming, key: str = "good") -> None:
    await stream.receive(f"<db:result from='{THEIRS}' to='{OURS}'>{key}</db:result>".encode())
    for task in list(stream.tasks):
        await task


async def test_incoming_offers_bidi_before_and_after_tls() -> None:
    for is_tls in (False, True):
        _stream, link = await incoming(Host(), is_tls=is_tls)
        assert '<bidi xmlns="urn:xmpp:features:bidi"/>' in link.take()
    host = Host()
    host.bidi = False  # a server that does not federate offers nothing
    _stream, link = await incoming(host)
    assert "bidi" not in link.take()


async def test_bidi_before_tls_is_refused() -> None:
    """§2.1: STARTTLS MUST be completed before enabling bidirectionality."""
    stream, link = await incoming(Host(), is_tls=False)
    link.take()
    await stream.receive(BIDI.encode())
    assert not stream.bidi
    assert stream.is_closed
    assert "policy-violation" in link.take()


async def test_nothing_is_sent_before_the_peer_is_authenticated() -> None:
    """§2.2: the receiving server MUST NOT send stanzas before the peer authenticated."""
    host = Host()
    stream, link = await incoming(host)
    await stream.receive(BIDI.encode())
    link.take()
    assert stream.bidi
    stream.send(chat(f"a@{OURS}", f"b@{THEIRS}"))
    assert link.take() == ""
    await dialback(stream, "bad")
    assert host.adopted == []
    stream.send(chat(f"a@{OURS}", f"b@{THEIRS}"))
    assert "message" not in link.take()


async def test_after_dialback_only_the_inverse_pair_flows() -> None:
    """§2.2: only stanzas for the inverse of an authenticated pair."""
    host = Host()
    stream, link = await incoming(host)
    await stream.receive(BIDI.encode())
    await dialback(stream)
    assert host.adopted == [(OURS, THEIRS, stream)]
    link.take()
    stream.send(chat(f"a@{OURS}", f"b@{THEIRS}"))
    assert '<message from="a@heron.example" to="b@peer.example"' in link.take()
    stream.send(chat(f"a@{OURS}", "b@other.example"))  # not authenticated
    stream.send(chat("a@conference.heron.example", f"b@{THEIRS}"))
    assert link.take() == ""


async def test_without_bidi_the_stream_is_not_adopted() -> None:
    host = Host()
    stream, link = await incoming(host)
    await dialback(stream)
    assert (THEIRS, OURS) in stream.authenticated
    assert host.adopted == []
    stream.send(chat(f"a@{OURS}", f"b@{THEIRS}"))
    assert "message" not in link.take()


async def outgoing(host: Host, features: str) -> tuple[S2SOutgoing, MemoryLink]:
    link = MemoryLink()
    stream = S2SOutgoing(
        host,  # type: ignore[arg-type]
        link,
        OURS,
        THEIRS,
        use_external=False,
        is_tls=True,
    )
    stream.start()
    await stream.receive(HEADER.format(from_=THEIRS, to=OURS, id="id='s1'").encode())
    await stream.receive(f"<stream:features>{features}</stream:features>".encode())
    return stream, link


BIDI_FEATURE = (
    "<bidi xmlns='urn:xmpp:features:bidi'/><dialback xmlns='urn:xmpp:features:dialback'/>"
)


async def test_outgoing_asks_for_bidi_before_dialback() -> None:
    """§2.2: <bidi/> SHOULD come before SASL or dialback."""
    stream, link = await outgoing(Host(), BIDI_FEATURE)
    written = link.take()
    assert written.index('<bidi xmlns="urn:xmpp:bidi"/>') < written.index("<db:result")
    assert stream.bidi


async def test_outgoing_without_the_feature_does_not_ask() -> None:
    stream, link = await outgoing(Host(), "<dialback xmlns='urn:xmpp:features:dialback'/>")
    assert "bidi" not in link.take()
    assert not stream.bidi
    await stream.receive(f"<db:result from='{THEIRS}' to='{OURS}' type='valid'/>".encode())
    await stream.receive(MESSAGE.format(from_=f"b@{THEIRS}", to=f"a@{OURS}").encode())
    assert stream.is_closed  # the peer's stanzas belong on its own stream


async def test_outgoing_takes_the_peers_stanzas_once_authenticated() -> None:
    host = Host()
    stream, link = await outgoing(host, BIDI_FEATURE)
    await stream.receive(f"<db:result from='{THEIRS}' to='{OURS}' type='valid'/>".encode())
    await stream.receive(MESSAGE.format(from_=f"b@{THEIRS}", to=f"a@{OURS}").encode())
    assert [(str(s.from_), str(s.to)) for s in host.received] == [(f"b@{THEIRS}", f"a@{OURS}")]
    assert not stream.is_closed
    # A domain the peer never proved on this stream ends it (RFC 6120 §4.9.3.9).
    await stream.receive(MESSAGE.format(from_="b@other.example", to=f"a@{OURS}").encode())
    assert stream.is_closed
    assert "invalid-from" in link.take()


async def test_outgoing_refuses_the_peers_stanzas_before_authentication() -> None:
    host = Host()
    stream, link = await outgoing(host, BIDI_FEATURE)
    await stream.receive(MESSAGE.format(from_=f"b@{THEIRS}", to=f"a@{OURS}").encode())
    assert host.received == []
    assert "invalid-from" in link.take()


async def test_a_valid_result_we_never_asked_for_proves_nothing() -> None:
    """§4: a db:result type='valid' without our request MUST NOT open a route."""
    host = Host()
    link = MemoryLink()
    stream = S2SOutgoing(host, link, OURS, THEIRS, use_external=True, is_tls=True)  # type: ignore[arg-type]
    stream.start()
    await stream.receive(HEADER.format(from_=THEIRS, to=OURS, id="id='s1'").encode())
    features = (
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        "<mechanism>EXTERNAL</mechanism></mechanisms>"
        "<bidi xmlns='urn:xmpp:features:bidi'/></stream:features>"
    )
    await stream.receive(features.encode())
    await stream.receive(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    await stream.receive(f"<db:result from='{THEIRS}' to='{OURS}' type='valid'/>".encode())
    assert stream.method == "EXTERNAL"
    await stream.receive(f"<db:result from='other.example' to='{OURS}' type='valid'/>".encode())
    await stream.receive(MESSAGE.format(from_="b@other.example", to=f"a@{OURS}").encode())
    assert host.received == []
    assert stream.is_closed


async def test_a_dialback_request_on_our_stream_gets_a_dialback_error() -> None:
    """§2.2: with bidi and dialback, dialback errors (XEP-0220) are what we answer with."""
    stream, link = await outgoing(Host(), BIDI_FEATURE)
    link.take()
    await stream.receive(f"<db:result from='conf.{THEIRS}' to='{OURS}'>k</db:result>".encode())
    answer = link.take()
    assert f'<db:result type="error" from="{OURS}" to="conf.{THEIRS}">' in answer
    assert "feature-not-implemented" in answer
    assert not stream.is_closed


class FakeRoute:
    """An outgoing stream for the manager, recording what it carried."""

    def __init__(self, can_verify: bool = True) -> None:
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.can_verify = can_verify
        self.sent: list[Element] = []
        self.asked: list[str] = []
        self.closed = False

    @property
    def is_closed(self) -> bool:
        return self.closed

    def send(self, el: Element) -> None:
        self.sent.append(el)

    async def verify(self, originating: str, stream_id: str, key: str) -> bool:
        self.asked.append(key)
        return True

    def close(self) -> None:
        self.closed = True


async def test_manager_uses_an_adopted_stream_and_cancels_its_own() -> None:
    made: list[FakeRoute] = []

    async def connect(local: str, remote: str) -> FakeRoute:
        made.append(FakeRoute())
        return made[-1]  # never ready: still negotiating when the peer's stream comes

    bounced: list[StanzaError] = []
    manager = S2SManager(connect, lambda _s, e: bounced.append(e), S2SLimits())
    message = chat(f"a@{OURS}", f"b@{THEIRS}")
    manager.send(Stanza(message, JID.parse(f"b@{THEIRS}"), JID.parse(f"a@{OURS}")))
    await asyncio.sleep(0)
    assert len(made) == 1
    theirs = FakeRoute(can_verify=False)
    theirs.ready.set_result(None)
    manager.adopt(OURS, THEIRS, theirs)
    await asyncio.sleep(0)
    assert theirs.sent == [message]  # the queued stanza went out on the peer's stream
    assert made[0].closed  # our own connection is dropped
    manager.send(Stanza(message, JID.parse(f"b@{THEIRS}"), JID.parse(f"a@{OURS}")))
    assert theirs.sent == [message, message]
    # §2.2: a key is never verified on the peer's bidirectional stream.
    assert await manager.verify(OURS, THEIRS, "sid", "k")
    assert theirs.asked == []
    assert len(made) == 2
    assert made[1].asked == ["k"]
    assert bounced == []
    await manager.stop()


async def test_manager_keeps_a_working_stream_of_its_own() -> None:
    ours = FakeRoute()
    ours.ready.set_result(None)

    async def connect(local: str, remote: str) -> FakeRoute:
        return ours

    manager = S2SManager(connect, lambda _s, _e: None, S2SLimits())
    message = chat(f"a@{OURS}", f"b@{THEIRS}")
    manager.send(Stanza(message, JID.parse(f"b@{THEIRS}"), JID.parse(f"a@{OURS}")))
    for _ in range(3):
        await asyncio.sleep(0)
    theirs = FakeRoute(can_verify=False)
    theirs.ready.set_result(None)
    manager.adopt(OURS, THEIRS, theirs)
    manager.send(Stanza(message, JID.parse(f"b@{THEIRS}"), JID.parse(f"a@{OURS}")))
    assert (len(ours.sent), theirs.sent) == (2, [])
    await manager.stop()
