"""The outgoing server stream engine, without sockets: dialback elements carry the db:
prefix the stream header declares, and a peer that refuses our certificate gets a fresh
stream for dialback instead of dialback on the refused one (ejabberd 23.01 ignores that)."""

from __future__ import annotations

import asyncio

import pytest

from heron.stream.s2s import ExternalRefused, S2SOutgoing
from heron.xmlstream import Limits
from tests.harness import MemoryLink

HEADER = (
    b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
    b" xmlns:db='jabber:server:dialback' from='peer.example' to='heron.example' id='s1'"
    b" version='1.0'>"
)


class Host:
    limits = Limits()

    def dialback_key(self, receiving: str, originating: str, stream_id: str) -> str:
        return f"key-{stream_id}"

    def offers_bidi(self) -> bool:
        return False


async def outgoing(*, use_external: bool) -> tuple[S2SOutgoing, MemoryLink]:
    link = MemoryLink()
    stream = S2SOutgoing(
        Host(),
        link,
        "heron.example",
        "peer.example",
        use_external=use_external,
        is_tls=True,  # type: ignore[arg-type]
    )
    stream.start()
    await stream.receive(HEADER)
    features = (
        b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        b"<mechanism>EXTERNAL</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:"
        b"dialback'/></stream:features>"
    )
    await stream.receive(features)
    return stream, link


async def test_refused_external_ends_the_stream_for_a_dialback_one() -> None:
    stream, link = await outgoing(use_external=True)
    assert 'mechanism="EXTERNAL"' in link.take()
    await stream.receive(
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
    )
    assert stream.external_refused
    assert stream.is_closed
    with pytest.raises(ExternalRefused):
        await asyncio.wait_for(stream.ready, 1)
    assert "db:result" not in link.take()  # no dialback on the refused stream


async def test_without_external_dialback_starts_at_once() -> None:
    stream, link = await outgoing(use_external=False)
    assert '<db:result from="heron.example" to="peer.example">key-s1</db:result>' in link.take()
    stream.close()
