"""A real Heron server driven without sockets: client streams on in-memory links.

The property tests and the fuzz target use it to push many inputs per second through the
whole path (parser → stream engine → router → modules → storage) that sockets would slow.
"""

from __future__ import annotations

import base64
from pathlib import Path

from heron.config import ServerConfig, config_from_dict
from heron.core.server import Server
from heron.jid import JID
from heron.modules import AVAILABLE
from heron.stream.base import TlsInfo
from heron.stream.c2s import C2SStream

HEADER = (
    b"<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams'>"
)
PASSWORD = "harness-password"


class MemoryLink:
    """A transport that keeps what the server writes."""

    def __init__(self, peer: str = "198.51.100.1") -> None:
        self.peer = peer
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.out += data

    def buffered(self) -> int:
        return 0

    async def start_tls(self, domain: str) -> TlsInfo:
        return TlsInfo("TLSv1.3", {})

    def close(self) -> None:
        self.closed = True

    def take(self) -> str:
        text, self.out = self.out.decode("utf-8", "replace"), bytearray()
        return text


def harness_config(data_dir: Path) -> ServerConfig:
    return config_from_dict(
        {"data_dir": str(data_dir), "listeners": [], "hosts": {"localhost": {}}}, "harness"
    )


async def start_server(data_dir: Path, users: tuple[str, ...]) -> Server:
    server = Server(harness_config(data_dir), AVAILABLE)
    await server.start()
    server.tls_domains = {"localhost"}
    for user in users:
        await server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    return server


async def connect(server: Server, user: str, resource: str) -> tuple[C2SStream, MemoryLink]:
    """A bound session for ``user`` (TLS assumed done, SASL PLAIN, bind)."""
    link = MemoryLink()
    stream = C2SStream(server, link, is_tls=True)
    stream.tls_established(TlsInfo("TLSv1.3", {}))
    await stream.receive(HEADER)
    token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode())
    await stream.receive(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % token
    )
    await stream.receive(HEADER)
    await stream.receive(
        b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<resource>%s</resource></bind></iq>" % resource.encode()
    )
    assert stream.is_bound, link.take()
    link.take()
    return stream, link


async def disconnect(server: Server, stream: C2SStream) -> None:
    stream.close()
    await server.ended(stream)
