"""The SOCKS5 handshake (RFC 1928, XEP-0065 profile) and the pairing broker, sans-IO."""

from __future__ import annotations

import hashlib

import pytest

from heron.core.bytestreams import BytestreamBroker, Pending, stream_address
from heron.jid import JID
from heron.stanza import StanzaError
from heron.stream.socks5 import Socks5Error, Socks5Handshake

ADDRESS = hashlib.sha1(b"x").hexdigest()  # noqa: S324 (an arbitrary stream address)
REQUEST = b"\x05\x01\x00\x03\x28" + ADDRESS.encode() + b"\x00\x00"


def test_whole_handshake_in_one_piece() -> None:
    handshake = Socks5Handshake()
    out = handshake.feed(b"\x05\x02\x02\x00" + REQUEST)
    assert out == b"\x05\x00" + b"\x05\x00\x00\x03\x28" + ADDRESS.encode() + b"\x00\x00"
    assert handshake.address == ADDRESS


def test_handshake_split_at_every_byte() -> None:
    data = b"\x05\x01\x00" + REQUEST
    for cut in range(1, len(data)):
        handshake = Socks5Handshake()
        out = handshake.feed(data[:cut]) + handshake.feed(data[cut:])
        assert handshake.address == ADDRESS
        assert out.startswith(b"\x05\x00\x05\x00")


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        (b"\x04\x01", b""),
        (b"\x05\x01\x02", b"\x05\xff"),
        (b"\x05\x01\x00\x05\x03\x00\x03\x28" + ADDRESS.encode() + b"\0\0", b"\x05\x00\x05\x07"),
        (b"\x05\x01\x00\x05\x01\x00\x04" + bytes(18), b"\x05\x00\x05\x08"),
        (b"\x05\x01\x00\x05\x01\x00\x03\x28" + ADDRESS.encode() + b"\x00\x50", b"\x05\x00\x05\x02"),
        (b"\x05\x01\x00\x05\x01\x00\x03\x04abcd\0\0", b"\x05\x00\x05\x02"),
        (b"\x05\x01\x00" + REQUEST + b"early data", b"\x05\x00\x05\x01"),
    ],
)
def test_bad_input_gets_the_rfc_1928_answer(data: bytes, answer: bytes) -> None:
    with pytest.raises(Socks5Error) as err:
        Socks5Handshake().feed(data)
    assert err.value.answer[: len(answer)] == answer


def test_stream_address_is_sha1_of_sid_initiator_target() -> None:
    initiator, target = JID.parse("a@example.org/r"), JID.parse("b@example.net/s")
    expected = hashlib.sha1(b"sid1a@example.org/rb@example.net/s").hexdigest()  # noqa: S324
    assert stream_address("sid1", initiator, target) == expected


async def test_broker_pairs_two_and_refuses_a_third() -> None:
    broker = BytestreamBroker()
    initiator, target = JID.parse("a@x/r"), JID.parse("b@x/s")
    address = stream_address("s", initiator, target)
    first, second, third = (Pending(address, lambda: None) for _ in range(3))
    assert broker.arrived(first)
    with pytest.raises(StanzaError):
        broker.activate("s", initiator, target)  # only one side is there
    assert broker.arrived(second)
    assert not broker.arrived(third)
    with pytest.raises(StanzaError):
        broker.activate("s", target, initiator)  # the wrong way round: another hash
    broker.activate("s", initiator, target)
    assert first.partner.result() is second
    assert second.partner.result() is first
    assert broker.waiting == {}


async def test_broker_forgets_connections_that_leave() -> None:
    broker = BytestreamBroker()
    pending = Pending(ADDRESS, lambda: None)
    assert broker.arrived(pending)
    broker.left(pending)
    assert broker.waiting == {}
    assert broker.pending_count == 0
