"""Server-to-server TCP: the listener for peers (5269, STARTTLS) and our outgoing connector.

Peers are found in the static ``peers`` map first, then by DNS SRV (`_xmpps-server._tcp`
for Direct TLS, XEP-0368, and `_xmpp-server._tcp` for STARTTLS, merged and ordered by
priority, weighted at random within one) and last at the domain itself on 5269
(RFC 6120 §3.2). Each connection runs one stream engine fed by ``pump`` under the same
traffic policy as client streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from heron.config import LimitsConfig
from heron.ratelimit import ConnectionGuard
from heron.stanza import StreamCondition, StreamError
from heron.stream.base import TlsInfo
from heron.stream.hosts import S2SHost
from heron.stream.s2s import S2SIncoming, S2SOutgoing
from heron.transport.runner import (
    READ_CHUNK,
    TLS_HANDSHAKE_S,
    Admission,
    Connections,
    TcpListener,
)
from heron.transport.tcp import TcpLink, TlsProvider, tls_info

log = logging.getLogger(__name__)

DEFAULT_PORT = 5269


@dataclass(frozen=True, slots=True)
class S2STls:
    server_context: ssl.SSLContext
    client_context: Callable[[str], ssl.SSLContext | None]  # our domain → its client context
    use_external: bool


def _no_binding(_domain: str) -> bytes | None:
    return None


class _ClientLink(TcpLink):
    """Our connection to a peer: STARTTLS as the client, naming the peer (SNI)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
    ) -> None:
        self.provider = TlsProvider(context, _no_binding)
        super().__init__(reader, writer, self.provider)

    async def start_tls(self, domain: str) -> TlsInfo:
        await self.writer.drain()
        await self.writer.start_tls(
            self.provider.context, server_hostname=domain, ssl_handshake_timeout=TLS_HANDSHAKE_S
        )
        return tls_info(self.writer.get_extra_info("ssl_object"), domain, self.provider)


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    direct_tls: bool = False


def make_resolver(address: str | None) -> dns.asyncresolver.Resolver:
    """The system's resolver, or one asking only the DNS server at ``address``."""
    if address is None:
        resolver = dns.asyncresolver.Resolver()
    else:
        host, _, port = address.rpartition(":")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host.strip("[]")]
        resolver.port = int(port)
    resolver.lifetime = 10.0
    return resolver


async def _srv(
    resolver: dns.asyncresolver.Resolver, name: str, direct_tls: bool
) -> list[tuple[int, int, Target]] | None:
    """(priority, weight, target) records; None when the name says "no service" (".")."""
    try:
        answer = await resolver.resolve(name, dns.rdatatype.SRV)
    except (dns.exception.DNSException, OSError):
        return []
    records = [
        (int(r.priority), int(r.weight), Target(str(r.target).rstrip("."), int(r.port), direct_tls))
        for r in answer
        if str(r.target) != "."
    ]
    return records if records or not len(answer) else None


async def resolve(
    domain: str, peers: Mapping[str, str], resolver: dns.asyncresolver.Resolver
) -> list[Target]:
    """Where ``domain``'s server listens, best first."""
    static = peers.get(domain)
    if static is not None:
        host, _, port = static.rpartition(":")
        return [Target(host.strip("[]"), int(port))]
    direct, starttls = await asyncio.gather(
        _srv(resolver, f"_xmpps-server._tcp.{domain}", True),
        _srv(resolver, f"_xmpp-server._tcp.{domain}", False),
    )
    if direct is None and starttls is None:
        return []  # the domain declares it offers no XMPP service
    records = (direct or []) + (starttls or [])
    ordered: list[Target] = []
    for priority in sorted({p for p, _w, _t in records}):
        group = [(w, t) for p, w, t in records if p == priority]
        while group:  # RFC 2782: weighted random order within a priority
            pick = random.choices(group, weights=[w + 1 for w, _t in group])[0]
            group.remove(pick)
            ordered.append(pick[1])
    return ordered or [Target(domain, DEFAULT_PORT)]


class S2SConnector:
    """Opens outgoing server streams for the core's S2SManager."""

    def __init__(
        self,
        host: S2SHost,
        tls: S2STls,
        *,
        policy: LimitsConfig,
        peers: Mapping[str, str],
        resolver: str | None = None,
    ) -> None:
        self.host, self.tls, self.policy = host, tls, policy
        self.peers = dict(peers)  # tests add peers whose ports are known only at run time
        self.resolver = make_resolver(resolver)
        self.own_resolver = resolver is not None  # then addresses come from it too
        self.connections: Connections[S2SOutgoing] = Connections()
        self.no_external: set[str] = set()  # peers that refused our certificate

    @property
    def streams(self) -> set[S2SOutgoing]:
        return self.connections.streams

    async def connect(self, local: str, remote: str) -> S2SOutgoing:
        if any(s.remote == remote and s.external_refused for s in self.streams):
            self.no_external.add(remote)  # the stream that was refused may still be closing
        context = self.tls.client_context(local)
        if context is None:
            raise ConnectionError(f"no certificate for {local}")
        last: Exception = ConnectionError(f"no address for {remote}")
        for target in await resolve(remote, self.peers, self.resolver):
            try:
                address = await self._address(target.host)
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        address,
                        target.port,
                        limit=READ_CHUNK,
                        ssl=context if target.direct_tls else None,
                        server_hostname=remote if target.direct_tls else None,
                    ),
                    15.0,
                )
            except (OSError, TimeoutError, ssl.SSLError, dns.exception.DNSException) as exc:
                last = exc
                continue
            link = _ClientLink(reader, writer, context)
            stream = S2SOutgoing(
                self.host,
                link,
                local,
                remote,
                use_external=self.tls.use_external and remote not in self.no_external,
                is_tls=target.direct_tls,
            )
            if target.direct_tls:
                stream.tls = tls_info(writer.get_extra_info("ssl_object"), remote, link.provider)
            stream.log.info(
                "s2s connecting %s -> %s at %s:%d%s",
                local,
                remote,
                target.host,
                target.port,
                " (Direct TLS)" if target.direct_tls else "",
            )
            stream.start()
            tasks = self.connections.tasks
            task = asyncio.ensure_future(self._run(stream, reader, writer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            return stream
        raise ConnectionError(f"cannot reach {remote}: {last}")

    async def _address(self, host: str) -> str:
        """The address to connect to: the system resolves names, unless a DNS server is set."""
        if not self.own_resolver:
            return host
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            with contextlib.suppress(dns.exception.DNSException):
                answer = await self.resolver.resolve(host, rdtype)
                for record in answer:
                    return str(record.address)
        return host

    async def _run(
        self, stream: S2SOutgoing, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await self.connections.run(stream, reader, self.policy)
        finally:
            if stream.external_refused:
                self.no_external.add(stream.remote)
            stream.close()
            stream.log.info(
                "s2s %s -> %s closed: %s", stream.local, stream.remote, stream.close_reason
            )
            with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def stop(self) -> None:
        await self.connections.close_all()


class S2SListener(TcpListener[S2SIncoming]):
    """Accepts peer servers and runs one incoming stream engine per connection."""

    def __init__(
        self,
        host: S2SHost,
        tls: S2STls,
        *,
        policy: LimitsConfig,
        guard: ConnectionGuard,
        direct_tls: bool,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(
            guard=guard,
            ssl_context=tls.server_context if direct_tls else None,
            reuse_port=reuse_port,
        )
        self.host, self.tls, self.policy = host, tls, policy

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, admission: Admission
    ) -> None:
        provider = TlsProvider(self.tls.server_context, _no_binding)
        link = TcpLink(reader, writer, provider)
        stream = S2SIncoming(self.host, link, is_tls=self.is_direct_tls)
        if self.is_direct_tls:
            stream.tls = tls_info(writer.get_extra_info("ssl_object"), "", provider)
        stream.log.info("s2s peer connected%s", " (Direct TLS)" if self.is_direct_tls else "")
        # A peer that authenticates nothing in time is dropped like a client that never logs in.
        deadline = (self.policy.auth_timeout_s, lambda: _unauthenticated(stream))
        try:
            await self.connections.run(stream, reader, self.policy, deadlines=[deadline])
        finally:
            for pending in list(stream.tasks):
                pending.cancel()
            link.close()
            stream.log.info("s2s peer disconnected: %s", stream.close_reason or "closed")


def _unauthenticated(stream: S2SIncoming) -> None:
    if not stream.authenticated and not stream.is_closed:
        stream.close_reason = "no domain authenticated in time"
        stream.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "authenticate first"))
