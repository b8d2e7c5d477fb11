"""A deliberately dumb XMPP client speaking raw bytes, for protocol and attack tests."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from pathlib import Path

HEADER = (
    "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' "
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = ""

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def expect(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Read until ``pattern`` (a regex) matches the unread input; consume up to it."""
        regex = re.compile(pattern, re.S)
        async with asyncio.timeout(timeout):
            while True:
                match = regex.search(self.buffer)
                if match:
                    self.buffer = self.buffer[match.end() :]
                    return match
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError(f"closed before {pattern!r}; got {self.buffer!r}")
                self.buffer += chunk.decode("utf-8", "replace")

    async def closed(self, timeout: float = 5.0) -> str:
        """Read until the server closes the connection; returns everything read."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except (ConnectionError, ssl.SSLError):
                    break
                if not chunk:
                    break
                self.buffer += chunk.decode("utf-8", "replace")
        return self.buffer

    async def open_stream(self, domain: str = "localhost") -> str:
        await self.send(HEADER.format(domain=domain))
        return (await self.expect(r"</stream:features>")).string

    async def starttls(self, ca: Path, domain: str = "localhost") -> None:
        await self.open_stream(domain)
        await self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await self.expect(r"<proceed[^>]*/>")
        context = ssl.create_default_context(cafile=str(ca))
        await self.writer.start_tls(context, server_hostname=domain)
        self.buffer = ""

    async def login(self, ca: Path, user: str, password: str, resource: str = "raw") -> None:
        """STARTTLS, SASL PLAIN, bind."""
        await self.starttls(ca)
        await self.open_stream()
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(
            f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        )
        await self.expect(r"<success[^>]*(/>|>.*?</success>)")
        await self.open_stream()
        await self.send(
            "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            f"<resource>{resource}</resource></bind></iq>"
        )
        await self.expect(r"</iq>")

    def close(self) -> None:
        self.writer.close()
