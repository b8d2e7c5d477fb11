"""XEP-0198 Stream Management bookkeeping: what was handled, sent and acknowledged.

Counters are unsigned 32-bit and wrap (XEP-0198 §4). The stanzas sent and not yet
acknowledged are kept, in order, so they can be sent again after a resumption or handed
back to the router when a hibernated session expires.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field

from heron import ns
from heron.stanza import StreamCondition, StreamError
from heron.xmlstream.element import Element

WRAP = 1 << 32
MAX_UNACKED = 1000
REQUEST_EVERY = 5  # ask for an acknowledgement after this many unacknowledged stanzas


class HandledTooHigh(Exception):
    """The peer acknowledged stanzas that were never sent (§4: handled-count-too-high)."""


@dataclass
class StreamManagement:
    resumable: bool
    id: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    handled: int = 0  # stanzas received from the client (its 'h' is ours to report)
    acked: int = 0  # the last 'h' the client reported for what we sent
    unacked: deque[Element] = field(default_factory=deque)

    def received(self) -> None:
        self.handled = (self.handled + 1) % WRAP

    def sent(self, el: Element) -> bool:
        """Remember an outgoing stanza; True when it is time to ask for an ack."""
        self.unacked.append(el)
        return len(self.unacked) % REQUEST_EVERY == 0

    def acknowledge(self, h: int) -> None:
        """The client has handled stanzas up to ``h``: forget those."""
        count = (h - self.acked) % WRAP
        if count > len(self.unacked):
            raise HandledTooHigh(f"acknowledged {count}, {len(self.unacked)} unacknowledged")
        for _ in range(count):
            self.unacked.popleft()
        self.acked = h % WRAP

    @property
    def overflowing(self) -> bool:
        return len(self.unacked) > MAX_UNACKED

    def acknowledge_element(self, el: Element) -> None:
        """An ``<a h='…'/>`` from the client; a bad or impossible count ends the stream
        (§4: ``handled-count-too-high`` under ``undefined-condition``)."""
        try:
            self.acknowledge(int(el.attrs.get("h", "")))
        except ValueError as exc:
            raise StreamError(StreamCondition.INVALID_XML, "h must be a number") from exc
        except HandledTooHigh as exc:
            extra = Element("handled-count-too-high", ns.SM, {"h": el.attrs["h"]})
            raise StreamError(StreamCondition.UNDEFINED_CONDITION, str(exc), extra) from exc


def failed(condition: str) -> Element:
    """``<failed/>`` with a stanza error condition (§3, §5)."""
    element = Element("failed", ns.SM)
    element.add(condition, ns.STANZAS_ERRORS)
    return element
