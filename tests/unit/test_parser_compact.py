"""An idle stream's parser is replaced by a fresh one inside the same root (memory of idle
sessions): what follows parses exactly as it would have, limits and byte counts included."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.xmlstream import (
    Element,
    ElementReceived,
    Limits,
    StreamClosed,
    StreamEvent,
    StreamParser,
    XmlStreamError,
    serialize,
)

HEADER = (
    b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
    b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    b"xmlns:p='urn:x:p&amp;q'>"
)
STANZAS = [
    b"<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
    b"<presence><show>away</show><p:x a='1'>t&amp;u</p:x></presence>",
    b"<message to='a@b'><body>hello</body></message>",
]


def received(events: list[StreamEvent]) -> list[Element]:
    return [e.element for e in events if isinstance(e, ElementReceived)]


def elements_after(parser: StreamParser, data: bytes) -> list[bytes]:
    return [serialize(el).encode() for el in received(parser.feed(data))]


@given(st.lists(st.sampled_from(STANZAS), min_size=1, max_size=6), st.data())
@settings(max_examples=60, deadline=None)
def test_compaction_between_any_stanzas_changes_nothing(
    stanzas: list[bytes], data: st.DataObject
) -> None:
    plain, compacted = StreamParser(), StreamParser()
    plain.feed(HEADER)
    compacted.feed(HEADER)
    for stanza in stanzas:
        if data.draw(st.booleans()):
            compacted.compact()
        assert elements_after(compacted, stanza) == elements_after(plain, stanza)
    assert elements_after(compacted, b"</stream:stream>") == []


def test_the_default_and_prefixed_namespaces_of_the_root_still_apply() -> None:
    parser = StreamParser()
    parser.feed(HEADER + STANZAS[1])
    assert parser.compact()
    (presence,) = received(parser.feed(STANZAS[1]))
    assert presence.ns == "jabber:client"
    x = presence.children[1]
    assert isinstance(x, Element)
    assert x.ns == "urn:x:p&q"
    assert x.children == ["t&u"]


def test_a_root_with_another_prefix_for_the_stream_namespace() -> None:
    parser = StreamParser()
    parser.feed(b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>")
    parser.compact()
    (msg,) = received(parser.feed(STANZAS[2]))
    assert msg.ns == "jabber:client"
    assert any(isinstance(e, StreamClosed) for e in parser.feed(b"</s:stream>"))


def test_nothing_happens_mid_stanza_and_the_stanza_completes() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<message><body>hel")
    assert not parser.compact()
    (msg,) = received(parser.feed(b"lo</body></message>"))
    assert serialize(msg) == '<message xmlns="jabber:client"><body>hello</body></message>'


def test_the_stanza_size_limit_counts_stream_bytes_after_compaction() -> None:
    parser = StreamParser(Limits(max_stanza_bytes=200))
    parser.feed(HEADER + STANZAS[0] * 5)
    parser.compact()
    assert len(received(parser.feed(b"<message><body>" + b"a" * 150 + b"</body></message>"))) == 1
    with pytest.raises(XmlStreamError, match="too large"):
        parser.feed(b"<message><body>" + b"a" * 300)


def test_sweep_compacts_once_after_a_quiet_period() -> None:
    parser = StreamParser()
    parser.feed(HEADER + STANZAS[0])
    first = parser._parser
    parser.sweep()  # input since the last sweep: not idle yet
    assert parser._parser is first
    assert parser.sweep()  # quiet for a whole period: compacted
    second = parser._parser
    assert second is not first
    parser.sweep()  # nothing parsed since: left alone
    assert parser._parser is second
    parser.feed(STANZAS[2])
    parser.sweep()
    assert parser._parser is second


def test_a_compacted_parser_holds_less() -> None:
    stanzas = b"".join(
        f"<iq type='get' id='{i}'><q{i} xmlns='urn:n{i}' a{i}='v'/></iq>".encode()
        for i in range(40)
    )
    tracemalloc.start()
    try:
        parser = StreamParser()
        parser.feed(HEADER + stanzas)
        before = tracemalloc.get_traced_memory()[0]
        parser.compact()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after < before
