"""What handlers may rely on in a routed stanza: its sender, an IQ's payload, the account
it is addressed to."""

from __future__ import annotations

import pytest

from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element


def iq(to: str | None, from_: str | None, payload: bool = True) -> Stanza:
    el = Element("iq", "jabber:client", {"type": "get", "id": "1"})
    if payload:
        el.add("query", "urn:example")
    return Stanza(el, JID.parse(to) if to else None, JID.parse(from_) if from_ else None)


def test_sender_and_query() -> None:
    stanza = iq("alice@example.org", "bob@example.org/phone")
    assert stanza.sender == JID.parse("bob@example.org/phone")
    assert stanza.query.tag == "query"


def test_missing_sender_or_payload_is_our_bug() -> None:
    with pytest.raises(RuntimeError, match="without from"):
        _ = iq("alice@example.org", None).sender
    with pytest.raises(RuntimeError, match="without a payload"):
        _ = iq("alice@example.org", "bob@example.org", payload=False).query


def test_account_is_the_bare_addressee() -> None:
    assert iq("alice@example.org/desk", "b@x").account() == JID.parse("alice@example.org")
    for to in ("example.org", None):
        with pytest.raises(StanzaError) as caught:
            iq(to, "b@x").account()
        assert caught.value.condition == StanzaCondition.BAD_REQUEST
