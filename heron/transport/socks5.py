"""The SOCKS5 listener of the bytestreams proxy (XEP-0065 §6) and the relay between pairs.

Each connection runs the sans-IO handshake, then waits (at most ``pending_timeout_s``) for
the broker to pair it with its partner at activation. A byte sent before that, or the
connection closing, ends the wait. Once paired, each side's task copies what it reads to
the other side, under the stream's shared rate (``bytes_per_s``) and total (``max_bytes``);
when a side finishes sending, the other side's writing half is closed, and once both have
finished, both connections are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from heron.core.bytestreams import BytestreamBroker, Pending, ProxyLimits
from heron.ratelimit import TokenBucket
from heron.stream.base import XmlStream
from heron.stream.socks5 import Reply, Socks5Error, Socks5Handshake, reply
from heron.transport.runner import Admission, TcpListener, cancel_all

log = logging.getLogger(__name__)

CHUNK = 65536


@dataclass(slots=True)
class _Relay:
    """What two paired connections share."""

    bucket: TokenBucket
    limits: ProxyLimits
    relayed: int = 0
    finished: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class Socks5Listener(TcpListener[XmlStream]):
    """Runs the SOCKS5 side of each connection; it carries no XML stream."""

    backlog = 128
    read_limit = CHUNK

    def __init__(self, broker: BytestreamBroker, *, reuse_port: bool = False) -> None:
        super().__init__(guard=None, reuse_port=reuse_port)
        self.broker = broker
        self.writers: dict[Pending, asyncio.StreamWriter] = {}
        self.relays: dict[str, _Relay] = {}

    async def _closing(self) -> None:
        for writer in list(self.writers.values()):
            writer.close()
        await cancel_all(self.connections.tasks)

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, admission: Admission
    ) -> None:
        pending: Pending | None = None
        try:
            pending = await self._handshake(reader, writer)
            if pending is not None:
                paired = await self._wait(pending, reader)
                if paired is not None:
                    await self._relay(pending, *paired, reader)
        except (ConnectionError, OSError) as exc:
            log.debug("socks5 connection ended: %s", exc)
        except asyncio.CancelledError:
            pass
        finally:
            if pending is not None:
                self.broker.left(pending)
                self.writers.pop(pending, None)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Pending | None:
        handshake = Socks5Handshake()
        limits = self.broker.limits
        try:
            async with asyncio.timeout(limits.pending_timeout_s):
                while handshake.address is None:
                    data = await reader.read(512)
                    if not data:
                        return None
                    answer = handshake.feed(data)
                    if handshake.address is None:
                        writer.write(answer)
        except Socks5Error as exc:
            log.info("socks5 handshake refused: %s", exc)
            writer.write(exc.answer)
            return None
        except TimeoutError:
            return None
        pending = Pending(handshake.address, writer.close)
        if not self.broker.arrived(pending):
            writer.write(reply(Reply.NOT_ALLOWED, handshake.address.encode()))
            return None
        self.writers[pending] = writer
        writer.write(answer)
        return pending

    async def _wait(
        self, pending: Pending, reader: asyncio.StreamReader
    ) -> tuple[Pending, bytes] | None:
        """Until activation; a byte sent before it, EOF or the deadline end the wait.

        Returns the partner and what was read in the instant of activation (to pass on).
        """
        early: asyncio.Future[object] = asyncio.ensure_future(reader.read(1))
        partner: asyncio.Future[object] = pending.partner  # type: ignore[assignment]  # mixed wait set
        try:
            await asyncio.wait(
                {partner, early},
                timeout=self.broker.limits.pending_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            early.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await early  # the reader has one reader at a time
        first = early.result() if not early.cancelled() else b""
        assert isinstance(first, bytes)
        closed = not early.cancelled() and not first  # EOF while waiting
        if partner.done() and not closed:
            return pending.partner.result(), first
        if first:
            log.info("socks5: data before activation, connection closed")
        return None

    async def _relay(
        self, pending: Pending, partner: Pending, first: bytes, reader: asyncio.StreamReader
    ) -> None:
        limits = self.broker.limits
        loop = asyncio.get_running_loop()
        stream = self.relays.get(pending.address)
        if stream is None:
            stream = self.relays[pending.address] = _Relay(
                TokenBucket(limits.bytes_per_s, limits.bytes_per_s, loop.time()), limits
            )
        own, other = self.writers.get(pending), self.writers.get(partner)
        if own is None or other is None:
            return  # the partner went away at the moment of activation
        stream.writers.append(own)
        try:
            data = first
            while data or (data := await reader.read(CHUNK)):
                stream.relayed += len(data)
                if stream.relayed > limits.max_bytes:
                    log.info("bytestream %s: over its byte limit, closed", pending.address[:8])
                    stream.close()
                    other.close()
                    break
                other.write(data)
                await other.drain()
                wait = stream.bucket.take(len(data), loop.time())
                data = b""
                if wait > 0:
                    await asyncio.sleep(wait)
            else:
                if other.can_write_eof() and not other.is_closing():
                    other.write_eof()  # the partner reads to the end of what was sent
        except (ConnectionError, OSError):
            stream.close()
            other.close()
        finally:
            stream.finished += 1
            if stream.finished >= 2 or other.is_closing():
                self.relays.pop(pending.address, None)
                stream.done.set()
        await stream.done.wait()  # the other direction may still be sending to us
        stream.close()
