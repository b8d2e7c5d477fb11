"""XMPP over WebSocket (RFC 7395): the same client stream engine as TCP, with each WebSocket
text message one whole element and <open/>/<close/> in place of the stream's header and
footer. Only the framing differs; negotiation, SASL, binding and stream management are the
engine's."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from aiohttp import WSMsgType, web

from heron import ns
from heron.stream.base import TlsInfo
from heron.stream.c2s import Framing
from heron.xmlstream import STREAM_FOOTER, Element, Limits, serialize, stream_header
from heron.xmlstream.stored import parse_stored


class WebSocketFraming(Framing):
    """RFC 7395 §3.3: every message is a standalone document, namespaces declared in it."""

    def header(self, from_: str | None, stream_id: str) -> str:
        open_ = Element(
            "open", ns.WS_FRAMING, {"version": "1.0", "id": stream_id, ns.XML_LANG: "en"}
        )
        if from_:
            open_.attrs["from"] = from_
        return serialize(open_)

    def element(self, element: Element) -> str:
        if element.ns == ns.STREAM:  # <stream:features/>, <stream:error/> with their prefix
            text = serialize(element, ns.CLIENT)
            prefix = f"<stream:{element.tag}"
            return text.replace(prefix, f"{prefix} xmlns:stream='{ns.STREAM}'", 1)
        return serialize(element)  # jabber:client (or the nonza's namespace) declared

    def footer(self) -> str:
        return serialize(Element("close", ns.WS_FRAMING))


def to_stream_bytes(text: str, limits: Limits) -> bytes:
    """One WebSocket message as the bytes the engine's stream parser expects: <open/> becomes
    a stream header (a restart after SASL is a new <open/>), <close/> the footer, and any
    other element passes as it is."""
    head = text.lstrip()[:6]
    if head.startswith("<open"):
        opened = parse_stored(text, ("open", ns.WS_FRAMING), limits)
        if opened is not None:
            return stream_header(
                default_ns=ns.CLIENT,
                from_=opened.attrs.get("from"),
                to=opened.attrs.get("to"),
                stream_id=None,
                version=opened.attrs.get("version", "0.9"),
                lang=opened.attrs.get(ns.XML_LANG),
            ).encode()
    elif head.startswith("<close"):
        return STREAM_FOOTER.encode()
    return text.encode()


class WebSocketReader:
    """The ``Reader`` the traffic pump reads from: one message at a time."""

    def __init__(self, ws: web.WebSocketResponse, limits: Limits) -> None:
        self.ws = ws
        self.limits = limits

    async def read(self, n: int = -1) -> bytes:
        while True:
            message = await self.ws.receive()
            if message.type is WSMsgType.TEXT:
                return to_stream_bytes(str(message.data), self.limits)
            if message.type is WSMsgType.BINARY:  # §3.2: text frames; bytes are not XML here
                return b"\x00"
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return b""
            if message.type is WSMsgType.ERROR:
                return b""


class WebSocketLink:
    """The engine's ``Link``: writes become messages, sent in order by one task."""

    def __init__(self, ws: web.WebSocketResponse, peer: str) -> None:
        self.ws = ws
        self.peer = peer
        self.closed = False
        self._queue: deque[tuple[str, int]] = deque()
        self._pending = 0
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._send_all())

    def write(self, data: bytes) -> None:
        if not self.closed:
            self._queue.append((data.decode(), len(data)))
            self._pending += len(data)
            self._wake.set()

    def buffered(self) -> int:
        return self._pending

    async def start_tls(self, domain: str) -> TlsInfo:
        raise ConnectionError("STARTTLS is not possible over WebSocket (use wss://)")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake.set()

    async def finished(self) -> None:
        """Wait until everything written is sent and the WebSocket is closed."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _send_all(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    text, size = self._queue.popleft()
                    self._pending -= size
                    await self.ws.send_str(text)
                if self.closed:
                    break
        except (ConnectionError, RuntimeError):
            self.closed = True  # the peer went away; the reader sees it too
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.close()
