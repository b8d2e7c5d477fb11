"""Pairing and activation of SOCKS5 bytestreams through the server's proxy (XEP-0065 §6).

Both parties connect to the proxy with the same address, SHA-1(SID + initiator JID + target
JID) in hex: first the target, then the initiator. Nothing is relayed until the initiator
activates the stream with an IQ naming the target; the proxy then checks the address it
computes from the IQ matches two waiting connections. Connections that wait too long are
closed by the transport; at most ``max_pending`` wait at once.

The core knows no sockets: a waiting connection is a ``Pending`` whose ``partner`` future
the broker completes at activation; the transport then relays between the two.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from heron.jid import JID
from heron.stanza import StanzaCondition, StanzaError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    bytes_per_s: int = 1048576
    """Each activated stream's relay rate (both directions together)."""
    max_bytes: int = 104857600
    """Bytes one activated stream may carry in all; then it is closed."""
    pending_timeout_s: float = 60.0
    """A connection not activated by then is closed."""
    max_pending: int = 1000
    """Connections waiting for activation, over all streams."""


@dataclass(eq=False, slots=True)
class Pending:
    """One SOCKS5 connection that finished its handshake."""

    address: str
    close: Callable[[], None]
    partner: asyncio.Future[Pending] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(slots=True)
class ListenRequest:
    """A proxy module asks the wiring for a SOCKS5 listener; ``port`` is set once bound."""

    host: str
    port: int
    bound: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def stream_address(sid: str, initiator: JID, target: JID) -> str:
    """XEP-0065 §5.3.2: hex SHA-1 of SID, initiator's full JID and target's full JID."""
    data = (sid + str(initiator) + str(target)).encode()
    return hashlib.sha1(data).hexdigest()  # noqa: S324 (the XEP's hash, not for secrecy)


class BytestreamBroker:
    def __init__(self) -> None:
        self.limits = ProxyLimits()
        self.waiting: dict[str, list[Pending]] = {}
        self.listen_requests: list[ListenRequest] = []

    def listen(self, host: str, port: int, limits: ProxyLimits) -> ListenRequest:
        """Ask for a listener (the wiring starts it after the modules loaded)."""
        self.limits = limits
        request = ListenRequest(host, port)
        self.listen_requests.append(request)
        return request

    @property
    def pending_count(self) -> int:
        return sum(len(v) for v in self.waiting.values())

    def arrived(self, pending: Pending) -> bool:
        """A connection finished its handshake; False when it must be refused."""
        slot = self.waiting.setdefault(pending.address, [])
        if len(slot) >= 2 or self.pending_count >= self.limits.max_pending:
            if not slot:
                del self.waiting[pending.address]
            return False
        slot.append(pending)
        return True

    def left(self, pending: Pending) -> None:
        """A waiting connection closed or timed out."""
        slot = self.waiting.get(pending.address)
        if slot is not None and pending in slot:
            slot.remove(pending)
            if not slot:
                del self.waiting[pending.address]

    def activate(self, sid: str, initiator: JID, target: JID) -> None:
        """XEP-0065 §6.3.5: pair the two connections; StanzaError when they are not there."""
        address = stream_address(sid, initiator, target)
        slot = self.waiting.get(address)
        if slot is None or len(slot) != 2:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "both parties must be connected")
        del self.waiting[address]
        target_side, initiator_side = slot
        target_side.partner.set_result(initiator_side)
        initiator_side.partner.set_result(target_side)
        log.info("bytestream %s activated by %s", address[:8], initiator)
