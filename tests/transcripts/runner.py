"""Running a transcript against a live Heron: each client a real STARTTLS stream."""

from __future__ import annotations

import asyncio
import base64
import itertools
import ssl
from pathlib import Path

from heron.app import RunningServer
from heron.jid import JID
from heron.xmlstream.element import Element
from heron.xmlstream.parser import ElementReceived, StreamClosed, StreamParser
from heron.xmlstream.serializer import serialize_bytes
from tests.transcripts.script import (
    Mismatch,
    Step,
    Transcript,
    TranscriptError,
    match,
    parse_fragment,
    show,
    substitute,
)

PASSWORD = "transcript-password"
HEADER = (
    "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams'>"
)
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
TIMEOUT = 5.0
_ids = itertools.count(1)


class StreamClient:
    """One client stream: negotiation by hand, then stanzas parsed with Heron's parser."""

    def __init__(self, name: str, jid: JID) -> None:
        self.name = name
        self.jid = jid
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.parser = StreamParser()
        self.inbox: list[Element] = []
        self.ended = False  # the server closed the stream

    async def connect(self, port: int, ca: Path, *, login: bool = True) -> None:
        """STARTTLS, then (``login``) SASL PLAIN and bind; without it the stream stays
        before login with its features the next element to receive."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.inbox.clear()  # what an earlier connection left unread is gone with it
        await self._open()
        await self._send_raw(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await self._next("proceed")
        context = ssl.create_default_context(cafile=str(ca))
        await self.writer.start_tls(context, server_hostname=self.jid.domain)
        if not login:
            self.parser, self.ended = StreamParser(), False
            await self._send_raw(HEADER.format(domain=self.jid.domain).encode())
            return
        await self._open()
        token = base64.b64encode(f"\0{self.jid.local}\0{PASSWORD}".encode())
        await self._send_raw(
            b"<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (SASL.encode(), token)
        )
        answer = await self._next()
        if answer.tag != "success":
            raise Mismatch(f"{self.name}: login refused: {show(answer)}")
        await self._open()
        await self._send_raw(
            b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<resource>%s</resource></bind></iq>" % (self.jid.resource or "").encode()
        )
        bound = await self._next("iq")
        if bound.get("type") != "result":
            raise Mismatch(f"{self.name}: bind failed: {show(bound)}")

    async def _open(self) -> None:
        self.parser, self.ended = StreamParser(), False
        await self._send_raw(HEADER.format(domain=self.jid.domain).encode())
        await self._next("features")

    async def _send_raw(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, element: Element) -> None:
        await self._send_raw(serialize_bytes(element, "jabber:client"))

    async def _next(self, tag: str | None = None) -> Element:
        """The next element of the stream (of this name, when given)."""
        element = await self.receive()
        if tag is not None and element.tag != tag:
            raise Mismatch(f"{self.name}: expected <{tag}>, got {show(element)}")
        return element

    async def receive(self, timeout: float = TIMEOUT) -> Element:
        assert self.reader is not None
        async with asyncio.timeout(timeout):
            while not self.inbox:
                if self.ended:
                    raise Mismatch(f"{self.name}: the server closed the stream")
                data = await self.reader.read(65536)
                if not data:
                    raise Mismatch(f"{self.name}: the server closed the connection")
                for event in self.parser.feed(data):
                    if isinstance(event, ElementReceived):
                        self.inbox.append(event.element)
                    elif isinstance(event, StreamClosed):
                        self.ended = True  # what came before it is still to be received
        return self.inbox.pop(0)

    async def sync(self) -> list[Element]:
        """A ping round trip to the server: the stanzas that arrived before its answer."""
        sync_id = f"transcript-sync-{next(_ids)}"
        ping = Element("iq", "jabber:client", {"type": "get", "id": sync_id})
        ping.attrs["to"] = self.jid.domain
        ping.add("ping", "urn:xmpp:ping")
        await self.send(ping)
        before: list[Element] = []
        while True:
            element = await self.receive()
            if element.tag == "iq" and element.get("id") == sync_id:
                return before
            before.append(element)

    async def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.write(b"</stream:stream>")
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (OSError, TimeoutError, ssl.SSLError):
                pass
            self.writer = None


async def run_transcript(server: RunningServer, script: Transcript) -> None:
    clients = {name: StreamClient(name, JID.parse(jid)) for name, jid in script.clients.items()}
    variables: dict[str, str] = {}
    for name, client in clients.items():
        variables[name] = str(client.jid)
        variables[f"{name}.bare"] = str(client.jid.bare)
        if not await server.server.accounts.exists(client.jid.bare):
            await server.server.accounts.create(client.jid.bare, PASSWORD)
    try:
        for step in script.steps:
            try:
                await _run_step(server, clients[step.client], step, variables)
            except (Mismatch, TimeoutError) as exc:
                raise Mismatch(
                    f"{script.title}, line {step.line} ({step.client}): {exc!r}"
                ) from exc
    finally:
        for client in clients.values():
            await client.close()


async def _run_step(
    server: RunningServer, client: StreamClient, step: Step, variables: dict[str, str]
) -> None:
    if step.verb in ("connects", "opens"):
        domain = client.jid.domain
        ca = server.certificates[domain]
        await client.connect(server.ports["c2s"], ca, login=step.verb == "connects")
    elif step.verb == "disconnects":
        await client.close()
    elif step.verb == "sends":
        for element in parse_fragment(substitute(step.xml, variables)):
            await client.send(element)
    elif step.verb == "nothing":
        extra = await client.sync()
        if extra:
            raise Mismatch("received unexpected: " + " ".join(show(e) for e in extra))
    else:
        expected = parse_fragment(substitute(step.xml, variables))
        if not expected:
            raise TranscriptError("nothing to expect")
        await _receive(client, expected, variables, any_order=step.verb == "receives-any")


async def _receive(
    client: StreamClient, expected: list[Element], variables: dict[str, str], *, any_order: bool
) -> None:
    pending = list(expected)
    while pending:
        try:
            got = await client.receive()
        except TimeoutError:
            waiting = " ".join(show(e) for e in pending)
            raise Mismatch(f"timed out waiting for {waiting}") from None
        candidates = pending if any_order else pending[:1]
        reasons: list[str] = []
        for want in candidates:
            reason = match(want, got, variables)
            if reason is None:
                pending.remove(want)
                break
            reasons.append(reason)
        else:
            raise Mismatch(f"got {show(got)}: " + "; ".join(reasons))
