"""The client stream engine driven with bytes through a fake link: no sockets."""

from __future__ import annotations

import base64

import pytest

from heron.credentials import ScramKeys, derive_keys, fake_keys
from heron.stanza import Stanza
from heron.stream.base import TlsInfo
from heron.stream.c2s import C2SStream, State
from heron.stream.sasl import verify_plain
from heron.xmlstream import Element, Limits

HEADER = (
    b"<stream:stream to='%s' version='1.0' xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams'>"
)


class FakeLink:
    peer = "192.0.2.1"

    def __init__(self) -> None:
        self.out = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def buffered(self) -> int:
        return 0

    async def start_tls(self, domain: str) -> TlsInfo:
        return TlsInfo("TLSv1.3", {})

    def close(self) -> None:
        self.closed = True

    def take(self) -> str:
        text, self.out = self.out.decode(), b""
        return text


class FakeHost:
    limits = Limits()
    pre_auth_limits = Limits(max_stanza_bytes=16384)
    require_tls = True
    out_queue_bytes = 1 << 20

    def __init__(self) -> None:
        self.keys = derive_keys("secret-pw", "SHA-256", iterations=4096)
        self.bound: list[C2SStream] = []
        self.stanzas: list[Stanza] = []
        self.blocked = False
        self.auth_log: list[tuple[str, bool]] = []

    def is_local_host(self, domain: str) -> bool:
        return domain == "example.org"

    def tls_available(self, domain: str) -> bool:
        return True

    async def keys_for(self, username: str, domain: str, hash_name: str) -> tuple[ScramKeys, bool]:
        if username == "alice":
            return self.keys, True
        return fake_keys(username, hash_name, b"k" * 32), False

    async def verify_plain(self, password: str, keys: ScramKeys) -> bool:
        return verify_plain(password, keys)

    async def auth_attempt(self, peer: str, username: str, domain: str) -> bool:
        return not self.blocked

    def auth_result(self, peer: str, username: str, domain: str, ok: bool) -> None:
        self.auth_log.append((username, ok))

    def stream_features(self, domain: str, authenticated: bool) -> list[Element]:
        return []

    async def preauth_iq(
        self, domain: str, stanza: Stanza, peer: str, state: dict[str, object]
    ) -> Element | None:
        return None

    def bind(self, session: C2SStream) -> None:
        self.bound.append(session)

    async def stanza(self, session: C2SStream, stanza: Stanza) -> None:
        self.stanzas.append(stanza)

    async def ended(self, session: C2SStream) -> None:
        pass

    async def nonza(self, session: C2SStream, element: Element) -> bool:
        return False

    sm_resume_timeout_s = 300.0

    def sm_enabled(self, session: C2SStream) -> None:
        pass

    def sm_find(self, session: C2SStream, previd: str) -> C2SStream | None:
        return None

    def sm_takeover(self, old: C2SStream, new: C2SStream) -> None:
        pass

    scram_iterations = 4096

    async def scram_upgrade(self, username: str, domain: str, keys: ScramKeys) -> None:
        pass

    async def fast_issue(
        self, username: str, domain: str, agent: str, mechanism: str
    ) -> tuple[str, float]:
        return "token", 0.0

    async def fast_invalidate(self, username: str, domain: str, agent: str) -> None:
        pass

    async def fast_verify(
        self, username: str, domain: str, agent: str, mechanism: str, proof: bytes, cb: bytes
    ) -> tuple[bytes, float] | None:
        return None


def plain(user: str, password: str) -> bytes:
    token = base64.b64encode(f"\0{user}\0{password}".encode())
    return b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % token


@pytest.fixture
def pair() -> tuple[C2SStream, FakeLink, FakeHost]:
    host, link = FakeHost(), FakeLink()
    return C2SStream(host, link, is_tls=False), link, host


async def test_starttls_sasl_bind_then_stanzas(pair: tuple[C2SStream, FakeLink, FakeHost]) -> None:
    stream, link, host = pair
    await stream.receive(HEADER % b"example.org")
    features = link.take()
    assert "<starttls" in features
    assert "<required/>" in features
    assert "mechanism" not in features  # nothing to authenticate with before TLS
    await stream.receive(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert "<proceed" in link.take()
    await stream.receive(HEADER % b"example.org")
    features = link.take()
    assert "<mechanism>PLAIN</mechanism>" in features
    assert "<mechanism>SCRAM-SHA-256</mechanism>" in features
    await stream.receive(plain("alice", "secret-pw"))
    assert "<success" in link.take()
    await stream.receive(HEADER % b"example.org")
    assert "urn:ietf:params:xml:ns:xmpp-bind" in link.take()
    await stream.receive(
        b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<resource>Home</resource></bind></iq>"
    )
    assert "<jid>alice@example.org/Home</jid>" in link.take()
    assert host.bound == [stream]
    await stream.receive(b"<message to='bob@example.org' id='m1'><body>hi</body></message>")
    (sent,) = host.stanzas
    assert sent.element.attrs["from"] == "alice@example.org/Home"
    assert str(sent.to) == "bob@example.org"


async def test_three_failed_logins_end_the_stream(
    pair: tuple[C2SStream, FakeLink, FakeHost],
) -> None:
    stream, link, _host = pair
    stream.tls_established(TlsInfo("TLSv1.3", {}))
    await stream.receive(HEADER % b"example.org")
    link.take()
    for user in ("alice", "nobody", "alice"):
        await stream.receive(plain(user, "wrong"))
    out = link.take()
    assert out.count("<not-authorized/></failure>") == 3
    assert "<policy-violation" in out
    assert stream.state is State.CLOSED


async def test_unknown_host_gets_host_unknown(pair: tuple[C2SStream, FakeLink, FakeHost]) -> None:
    stream, link, _host = pair
    await stream.receive(HEADER % b"elsewhere.example")
    out = link.take()
    assert out.startswith("<?xml")  # a header precedes the error (RFC 6120 §4.9.1.1)
    assert "<host-unknown" in out
    assert link.closed


async def test_wrong_namespace_gets_invalid_namespace(
    pair: tuple[C2SStream, FakeLink, FakeHost],
) -> None:
    stream, link, _host = pair
    await stream.receive(HEADER.replace(b"jabber:client", b"jabber:server") % b"example.org")
    assert "<invalid-namespace" in link.take()


async def test_a_stream_error_from_the_client_ends_the_stream_without_an_answer(
    pair: tuple[C2SStream, FakeLink, FakeHost],
) -> None:
    # RFC 6120 §4.9.1: the side that receives a stream error closes; it sends no error back.
    stream, link, _host = pair
    await stream.receive(HEADER % b"example.org")
    link.take()
    await stream.receive(
        b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    )
    out = link.take()
    assert "error" not in out
    assert out.endswith("</stream:stream>")
    assert link.closed
    assert stream.close_reason == "stream error from client: conflict"


async def test_stanza_before_login_is_not_authorized(
    pair: tuple[C2SStream, FakeLink, FakeHost],
) -> None:
    stream, link, _host = pair
    stream.tls_established(TlsInfo("TLSv1.3", {}))
    await stream.receive(HEADER % b"example.org")
    await stream.receive(b"<message to='bob@example.org'/>")
    assert "<not-authorized" in link.take()
    assert stream.state is State.CLOSED


async def test_login_results_reach_the_throttle_and_a_blocked_peer_is_refused(
    pair: tuple[C2SStream, FakeLink, FakeHost],
) -> None:
    stream, link, host = pair
    stream.is_tls = True
    await stream.receive(HEADER % b"example.org")
    link.take()
    await stream.receive(plain("nobody", "guess"))
    assert "<not-authorized/>" in link.take()
    await stream.receive(plain("alice", "guess"))
    assert "<not-authorized/>" in link.take()
    assert host.auth_log == [("nobody", False), ("alice", False)]  # unknown users alike
    host.blocked = True
    await stream.receive(plain("alice", "secret-pw"))  # even the right password
    out = link.take()
    assert "<temporary-auth-failure/>" in out
    assert "policy-violation" in out  # the third failure on this connection ends it
    assert not stream.is_authenticated
