"""XEP-0198 counters: acknowledgements drop what they cover, wrap at 2^32, never overshoot."""

from __future__ import annotations

import pytest

from heron.stream.sm import WRAP, HandledTooHigh, StreamManagement
from heron.xmlstream import Element


def message(n: int) -> Element:
    return Element("message", "jabber:client", {"id": str(n)})


def test_acks_drop_what_they_cover_and_ask_every_few() -> None:
    sm = StreamManagement(resumable=True)
    asks = [sm.sent(message(n)) for n in range(10)]
    assert asks == [False, False, False, False, True] * 2
    sm.acknowledge(4)
    assert [el.attrs["id"] for el in sm.unacked] == ["4", "5", "6", "7", "8", "9"]
    sm.acknowledge(4)  # the same ack again changes nothing
    assert len(sm.unacked) == 6
    with pytest.raises(HandledTooHigh):
        sm.acknowledge(11)


def test_counters_wrap_around() -> None:
    sm = StreamManagement(resumable=False)
    sm.acked = WRAP - 2
    for n in range(4):
        sm.sent(message(n))
    sm.acknowledge(1)  # 2^32 - 2 → 1 covers three stanzas
    assert [el.attrs["id"] for el in sm.unacked] == ["3"]
    sm.handled = WRAP - 1
    sm.received()
    assert sm.handled == 0
