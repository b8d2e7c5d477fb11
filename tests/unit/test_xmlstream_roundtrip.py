"""Property tests of the XML stream layer (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron import ns
from heron.xmlstream import (
    Element,
    ElementReceived,
    Limits,
    StreamEvent,
    StreamParser,
    XmlStreamError,
    prepare,
    serialize,
)

HEADER = (
    b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
    b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)
NAMESPACES = ["jabber:client", "urn:xmpp:ping", "http://jabber.org/protocol/disco#info", "x:y"]
NAMES = st.sampled_from(["message", "body", "query", "item", "x", "a-b", "c.d", "e_f"])
# Text that XML can carry: no C0 controls but tab/newline, no surrogates, no U+FFFE/U+FFFF.
TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"
        "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\ufffe\uffff",
    ),
    min_size=1,
    max_size=20,
)
ATTRS = st.dictionaries(st.sampled_from(["id", "type", "to", "from", "node"]), TEXT, max_size=3)


def _merge_text(children: list[Element | str]) -> list[Element | str]:
    merged: list[Element | str] = []
    for child in children:
        if isinstance(child, str) and merged and isinstance(merged[-1], str):
            merged[-1] += child
        else:
            merged.append(child)
    return merged


def elements(depth: int = 3) -> st.SearchStrategy[Element]:
    children: st.SearchStrategy[list[Element | str]]
    if depth == 0:
        children = st.lists(TEXT, max_size=1).map(list)
    else:
        children = st.lists(st.one_of(TEXT, elements(depth - 1)), max_size=3).map(_merge_text)
    return st.builds(
        lambda tag, ns, attrs, kids: Element(tag, ns, attrs, kids),
        NAMES,
        st.sampled_from(NAMESPACES),
        ATTRS,
        children,
    )


def parse_all(chunks: list[bytes]) -> list[StreamEvent]:
    parser = StreamParser()
    events: list[StreamEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


@settings(max_examples=200, deadline=None)
@given(elements())
def test_serialize_then_parse_gives_back_the_element(element: Element) -> None:
    data = HEADER + serialize(element, "jabber:client").encode()
    events = parse_all([data])
    assert events[-1] == ElementReceived(element)


@settings(max_examples=50, deadline=None)
@given(st.lists(elements(2), min_size=1, max_size=3), st.data())
def test_any_split_gives_the_same_events(stanzas: list[Element], data: st.DataObject) -> None:
    stream = HEADER + b" ".join(serialize(s, "jabber:client").encode() for s in stanzas)
    stream += b"</stream:stream>"
    whole = parse_all([stream])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert parse_all(pieces) == whole


def test_every_single_split_point_of_a_small_stream() -> None:
    stream = HEADER + "<message to='a@b'><body>h\u00e9 &amp; &lt;</body></message>".encode()
    whole = parse_all([stream])
    for cut in range(len(stream) + 1):
        assert parse_all([stream[:cut], stream[cut:]]) == whole


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=50), st.text(max_size=20))
def test_serializer_output_is_always_accepted(text: str, attr: str) -> None:
    element = Element("message", "jabber:client", {"id": attr}, [text] if text else [])
    try:
        parse_all([HEADER + serialize(element, "jabber:client").encode("utf-8", "strict")])
    except XmlStreamError as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"serializer produced XML the parser refuses: {exc}") from exc


def test_mid_stanza_follows_the_input() -> None:
    """What the slow-loris deadline relies on: begun-but-unfinished stanzas are visible."""
    parser = StreamParser()
    assert not parser.mid_stanza
    parser.feed(HEADER[:20])
    assert parser.mid_stanza  # half a header
    parser.feed(HEADER[20:])
    assert not parser.mid_stanza
    parser.feed(b"<message><body>hi")
    assert parser.mid_stanza
    parser.feed(b"</body></message>  ")
    assert not parser.mid_stanza
    parser.feed(b"<presence to='a@b'")
    assert parser.mid_stanza  # half a start tag: no element open yet
    parser.feed(b" />\n")
    assert not parser.mid_stanza


def test_an_endless_start_tag_is_refused_by_size() -> None:
    parser = StreamParser(Limits(max_stanza_bytes=4096))
    parser.feed(HEADER)
    parser.feed(b"<message a='")
    for _ in range(8):
        parser.feed(b"x" * 1024)  # within the limit (plus one parser slice) so far
    with pytest.raises(XmlStreamError) as info:
        parser.feed(b"x" * 32768)
    assert info.value.condition == "policy-violation"


def _groupchat() -> Element:
    message = Element("message", ns.CLIENT, {"type": "groupchat", "from": "room@muc/nick"})
    message.add("body", ns.CLIENT, text="fish & <chips>")
    message.add("occupant-id", "urn:xmpp:occupant-id:0", {"id": "abc"})
    return message


def test_prepared_copies_serialize_exactly_like_fresh_ones() -> None:
    message = _groupchat()
    prepare(message, ns.CLIENT)
    for to in ("a@x/1", "b@y/2"):
        copy = message.shallow_copy()
        copy.attrs["to"] = to
        fresh = _groupchat()
        fresh.attrs["to"] = to
        assert serialize(copy, ns.CLIENT) == serialize(fresh, ns.CLIENT)
    # Written on a server stream, the message (still jabber:client) comes out the same.
    assert serialize(message, ns.SERVER) == serialize(_groupchat(), ns.SERVER)


def test_changed_children_make_the_prepared_xml_stale() -> None:
    message = _groupchat()
    prepare(message, ns.CLIENT)
    added = message.shallow_copy()
    added.add("delay", ns.DELAY, {"stamp": "2026-01-01T00:00:00Z"})
    assert "urn:xmpp:delay" in serialize(added, ns.CLIENT)
    filtered = message.shallow_copy()
    filtered.children = [c for c in filtered.children if getattr(c, "tag", "") == "body"]
    assert "occupant-id" not in serialize(filtered, ns.CLIENT)
    deep = message.renamespaced(ns.CLIENT, ns.SERVER)
    assert deep.prepared is None
    assert "<body>" in serialize(deep, ns.SERVER)


def test_preparing_again_after_appending_serializes_like_a_fresh_element() -> None:
    message = _groupchat()
    prepare(message, ns.CLIENT)
    message.add("stanza-id", "urn:xmpp:sid:0", {"by": "a@x", "id": "1"})
    prepare(message, ns.CLIENT)  # reuses the first children's XML, adds the stanza-id's
    fresh = _groupchat()
    fresh.add("stanza-id", "urn:xmpp:sid:0", {"by": "a@x", "id": "1"})
    assert message.prepared is not None
    assert message.prepared[2].endswith('<stanza-id xmlns="urn:xmpp:sid:0" by="a@x" id="1"/>')
    assert serialize(message, ns.CLIENT) == serialize(fresh, ns.CLIENT)
    # A child taken out (not only appended) makes the earlier XML useless: all is redone.
    body = message.find("body", ns.CLIENT)
    assert body is not None
    message.children.remove(body)
    prepare(message, ns.CLIENT)
    assert message.prepared is not None
    assert "<body>" not in message.prepared[2]
    assert "<body>" not in serialize(message, ns.CLIENT)
