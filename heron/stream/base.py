"""What every XML stream engine shares (RFC 6120 §4): the receive loop and the way a stream ends.

The client, server and component engines differ in negotiation and in what a stanza may
carry, not in how bytes become events or how a stream closes. ``XmlStream`` feeds bytes to
the parser and hands each event to the engine's ``_opened``/``_element``; before every
top-level element it applies the adapter's pacing; a ``<stream:error/>`` or a
``</stream:stream>`` from the peer ends the stream, and so does any ``StreamError`` or
parser error the engine raises (RFC 6120 §4.9: it ends only that stream). ``close`` writes
the error and the footer once; ``eof`` records a connection that went away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import ClassVar, Protocol

from heron import ns
from heron.stanza import StreamCondition, StreamError
from heron.xmlstream import (
    STREAM_FOOTER,
    Element,
    ElementReceived,
    Limits,
    StreamClosed,
    StreamOpened,
    StreamParser,
    XmlStreamError,
)


@dataclass(frozen=True, slots=True)
class TlsInfo:
    version: str
    channel_bindings: dict[str, bytes]
    peer_certificate: bytes | None = None  # DER, only when TLS verified one


class Link(Protocol):
    """The transport under a stream."""

    peer: str

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet sent to the peer."""
        ...

    async def start_tls(self, domain: str) -> TlsInfo: ...

    def close(self) -> None: ...


class Phase(Enum):
    """Where a server or component stream stands (a client stream has more: c2s.State)."""

    WAIT_HEADER = auto()  # the peer's stream header (again after TLS or SASL)
    WAIT_TLS = auto()  # s2s: features sent, STARTTLS required first
    WAIT_HANDSHAKE = auto()  # a component: the header answered, its secret not yet proven
    OPEN = auto()  # s2s: authentication and stanzas; a component: routed
    CLOSED = auto()


class XmlStream:
    """One XML stream over a ``Link``; an engine supplies what happens on it.

    An engine implements ``is_closed``, ``_mark_closed`` (its own state becomes closed,
    and whatever must follow the end: unrouting a component, failing waiters), ``_opened``,
    ``_element`` and ``_send`` (an element serialized in the stream's namespaces).
    """

    __slots__ = ("_logger", "close_reason", "link", "pace", "parser", "stream_id")

    kind: ClassVar[str] = "xml"
    """Names the stream in log lines: ``c2s``, ``s2s``, ``component``."""
    peer_name: ClassVar[str] = "peer"
    """Names the other side in close reasons: ``closed by client``."""

    def __init__(self, link: Link, limits: Limits, logger: logging.Logger) -> None:
        self.link = link
        self.parser = StreamParser(limits)
        self.stream_id = ""
        self.close_reason = ""
        # Set by the adapter: before each top-level element, how long to wait (the rate
        # limit); it raises StreamError when the peer floods.
        self.pace: Callable[[], float] | None = None
        self._logger = logger

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The stream's logger, its lines tagged with the peer (made when used: an idle
        session does not keep one)."""
        return logging.LoggerAdapter(self._logger, {"peer": self.link.peer})

    # --- what an engine supplies --------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        raise NotImplementedError

    def _mark_closed(self, *, lost: bool) -> None:
        """The stream is over (``lost``: the connection went away without a close)."""
        raise NotImplementedError

    def _opened(self, event: StreamOpened) -> None:
        raise NotImplementedError

    async def _element(self, el: Element) -> None:
        raise NotImplementedError

    def _send(self, el: Element) -> None:
        raise NotImplementedError

    def _before_close(self, error: StreamError | None) -> None:
        """Closing before our own stream header went out: an engine that answers the
        peer's header sends one here, so that the error and footer stand in a stream."""

    def _footer(self) -> str:
        return STREAM_FOOTER

    async def _proceed_tls(self, domain: str, *, allowed: bool) -> TlsInfo | None:
        """STARTTLS as the receiving entity (RFC 6120 §5.4.2.3): ``<proceed/>``, the
        handshake and a fresh stream; or ``<failure/>`` and the end (§5.4.2.2)."""
        if not allowed:
            self._send(Element("failure", ns.TLS))
            self.close()
            return None
        self._send(Element("proceed", ns.TLS))
        info = await self.link.start_tls(domain)
        self.parser.reset()
        return info

    # --- output -----------------------------------------------------------------------
    def _write(self, text: str) -> None:
        self.link.write(text.encode())

    def close(self, error: StreamError | None = None) -> None:
        """End the stream from our side, with ``error`` when the peer broke the protocol."""
        if self.is_closed:
            return
        self._before_close(error)
        if error is not None:
            self.close_reason = self.close_reason or str(error.condition)
            self._send(error.to_element())
        self._write(self._footer())
        self._mark_closed(lost=False)
        self.link.close()

    def eof(self) -> None:
        """The connection is gone (the transport saw EOF or an error)."""
        if not self.is_closed:
            self.close_reason = self.close_reason or "connection lost"
            self._mark_closed(lost=True)

    # --- input ------------------------------------------------------------------------
    async def receive(self, data: bytes) -> None:
        """Bytes from the peer. Stream errors end only this stream."""
        try:
            for event in self.parser.feed(data):
                if self.is_closed:
                    return
                if isinstance(event, ElementReceived):
                    await self._receive_element(event.element)
                elif isinstance(event, StreamOpened):
                    self._opened(event)
                elif isinstance(event, StreamClosed):
                    self.close_reason = self.close_reason or f"closed by {self.peer_name}"
                    self.close()
        except XmlStreamError as exc:
            self.log.info("%s stream error %s: %s", self.kind, exc.condition, exc.text)
            self.close(StreamError(StreamCondition(exc.condition), exc.text))
        except StreamError as exc:
            self.log.info("%s stream error %s: %s", self.kind, exc.condition, exc.text)
            self.close(exc)

    async def _receive_element(self, el: Element) -> None:
        if el.ns == ns.STREAM and el.tag == "error":
            # RFC 6120 §4.9.1: the peer's stream error ends the stream; nothing is answered.
            condition = el.first()
            name = condition.tag if condition is not None else "?"
            self.close_reason = f"stream error from {self.peer_name}: {name}"
            self.close()
            return
        if self.pace is not None:
            wait = self.pace()  # may raise StreamError: a flood ends the stream
            if wait > 0:
                await asyncio.sleep(wait)
                if self.is_closed:
                    return
        await self._element(el)
