"""Sans-IO rules of client state indication (what may wait) and carbons (what is copied)."""

from __future__ import annotations

from heron.modules.carbons import eligible
from heron.modules.csi import Held
from heron.ns import CHATSTATES
from heron.xmlstream import Element

CLIENT = "jabber:client"


def presence(sender: str, status: str) -> Element:
    el = Element("presence", CLIENT, {"from": sender})
    el.add("status", CLIENT, text=status)
    return el


def chat_state(sender: str) -> Element:
    el = Element("message", CLIENT, {"from": sender, "type": "chat"})
    el.add("composing", CHATSTATES)
    return el


def test_held_collapses_per_sender_and_flushes_before_what_cannot_wait() -> None:
    held = Held(limit=10)
    assert held.offer(presence("a@x/1", "one")) == []
    assert held.offer(chat_state("b@x/1")) == []
    assert held.offer(presence("a@x/1", "two")) == []  # replaces "one", moves to the end
    body = Element("message", CLIENT, {"from": "b@x/1", "type": "chat"})
    body.add("body", CLIENT, text="hi")
    out = held.offer(body)
    assert [e.tag for e in out] == ["message", "presence", "message"]
    assert out[1].child_text("status", CLIENT) == "two"
    assert out[2] is body
    assert held.offer(Element("iq", CLIENT, {"type": "get"}))[0].tag == "iq"  # never held


def test_held_is_bounded() -> None:
    held = Held(limit=2)
    held.offer(presence("a@x/1", "a"))
    held.offer(presence("b@x/1", "b"))
    out = held.offer(presence("c@x/1", "c"))
    assert len(out) == 3  # over the limit: everything goes


def test_carbon_eligibility() -> None:
    chat = Element("message", CLIENT, {"type": "chat"})
    assert eligible(chat, "chat")
    normal = Element("message", CLIENT)
    assert not eligible(normal, "normal")  # no body
    normal.add("body", CLIENT, text="x")
    assert eligible(normal, "normal")
    assert not eligible(Element("message", CLIENT), "headline")
    private = Element("message", CLIENT, {"type": "chat"})
    private.add("private", "urn:xmpp:carbons:2")
    assert not eligible(private, "chat")
    no_copy = Element("message", CLIENT, {"type": "chat"})
    no_copy.add("no-copy", "urn:xmpp:hints")
    assert not eligible(no_copy, "chat")
