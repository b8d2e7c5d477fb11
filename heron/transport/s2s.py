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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from heron.ratelimit import ConnectionGuard
from heron.stanza import StreamCondition, StreamError
from heron.stream.base import TlsInfo
from heron.stream.hosts import S2SHost
from heron.stream.s2s import S2SIncoming, S2SOutgoing
from heron.transport.tcp import READ_CHUNK, TcpLink, TlsProvider, TrafficPolicy, pump, tls_info

log = logging.getLogger(__name__)

DEFAULT_PORT = 5269


@dataclass(frozen=True, slots=True)
class S2STls:
    server_context: ssl.SSLContext
    client_context: Callable[[str], ssl.SSLContext | None]  # our domain → its client context
    use_external: bool


def _no_binding(_domain: str) -> bytes | None:
    return None


class _ServerLink(TcpLink):
    """An accepted peer connection: STARTTLS as the server."""


class _ClientLink(TcpLink):
    """Our connection to a peer: STARTTLS as the client, naming the peer (SNI)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(reader, writer, TlsProvider(context, _no_binding))
        self.context = context

    async def start_tls(self, domain: str) -> TlsInfo:
        await self.writer.drain()
        await self.writer.start_tls(
            self.context, server_hostname=domain, ssl_handshake_timeout=15.0
        )
        return tls_info(self.writer.get_extra_info("ssl_object"), domain, self.tls)


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
        policy: TrafficPolicy,
        peers: Mapping[str, str],
        resolver: str | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.policy = policy
        self.peers = dict(peers)  # tests add peers whose ports are known only at run time
        self.resolver = make_resolver(resolver)
        self.own_resolver = resolver is not None  # then addresses come from it too
        self.tasks: set[asyncio.Task[None]] = set()
        self.streams: set[S2SOutgoing] = set()
        self.no_external: set[str] = set()  # peers that refused our certificate

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
                stream.tls = tls_info(writer.get_extra_info("ssl_object"), remote, link.tls)
            stream.log.info(
                "s2s connecting %s -> %s at %s:%d%s",
                local,
                remote,
                target.host,
                target.port,
                " (Direct TLS)" if target.direct_tls else "",
            )
            stream.start()
            task = asyncio.ensure_future(self._run(stream, reader, writer))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
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
        self.streams.add(stream)
        try:
            await pump(stream, reader, self.policy)
        except asyncio.CancelledError:
            stream.close_reason = stream.close_reason or "server shutting down"
        except (ssl.SSLError, OSError) as exc:
            stream.close_reason = f"TLS or socket error: {exc}"
        except Exception:
            stream.log.exception("internal error on an outgoing server stream")
            stream.close(StreamError(StreamCondition.INTERNAL_SERVER_ERROR))
        finally:
            self.streams.discard(stream)
            if stream.external_refused:
                self.no_external.add(stream.remote)
            stream.close()
            stream.log.info(
                "s2s %s -> %s closed: %s", stream.local, stream.remote, stream.close_reason
            )
            with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def stop(self) -> None:
        for stream in list(self.streams):
            stream.close(StreamError(StreamCondition.SYSTEM_SHUTDOWN))
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)


class S2SListener:
    """Accepts peer servers and runs one incoming stream engine per connection."""

    def __init__(
        self,
        host: S2SHost,
        tls: S2STls,
        *,
        policy: TrafficPolicy,
        guard: ConnectionGuard,
        direct_tls: bool = False,
    ) -> None:
        self.host = host
        self.tls = tls
        self.policy = policy
        self.guard = guard
        self.direct_tls = direct_tls
        self.streams: set[S2SIncoming] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self, address: str, port: int, *, reuse_port: bool = False) -> int:
        self.server = await asyncio.start_server(
            self._connection,
            address,
            port,
            backlog=1024,
            limit=READ_CHUNK,
            ssl=self.tls.server_context if self.direct_tls else None,
            ssl_handshake_timeout=15.0 if self.direct_tls else None,
            reuse_port=reuse_port or None,
        )
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for stream in list(self.streams):
            stream.close(StreamError(StreamCondition.SYSTEM_SHUTDOWN, "server shutting down"))
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
        if self.server is not None:
            await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _ServerLink(reader, writer, TlsProvider(self.tls.server_context, _no_binding))
        if self.guard.admit(link.peer, time.monotonic()) is not None:
            writer.transport.abort()
            return
        stream = S2SIncoming(self.host, link, is_tls=self.direct_tls)
        if self.direct_tls:
            stream.tls = tls_info(writer.get_extra_info("ssl_object"), "", link.tls)
        stream.log.info("s2s peer connected%s", " (Direct TLS)" if self.direct_tls else "")
        self.streams.add(stream)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        loop = asyncio.get_running_loop()
        # A peer that authenticates nothing in time is dropped like a client that never logs in.
        deadline = loop.call_later(self.policy.auth_timeout_s, _unauthenticated, stream)
        try:
            await pump(stream, reader, self.policy)
        except asyncio.CancelledError:
            stream.close_reason = stream.close_reason or "server shutting down"
        except (ssl.SSLError, OSError) as exc:
            stream.close_reason = f"TLS or socket error: {exc}"
        except Exception:
            stream.log.exception("internal error on an incoming server stream")
            stream.close(StreamError(StreamCondition.INTERNAL_SERVER_ERROR))
        finally:
            deadline.cancel()
            for pending in list(stream.tasks):
                pending.cancel()
            self.guard.closed(link.peer, authenticated=False)
            self.streams.discard(stream)
            if task is not None:
                self.tasks.discard(task)
            link.close()
            stream.log.info("s2s peer disconnected: %s", stream.close_reason or "closed")
            with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)


def _unauthenticated(stream: S2SIncoming) -> None:
    if not stream.authenticated and not stream.is_closed:
        stream.close_reason = "no domain authenticated in time"
        stream.close(StreamError(StreamCondition.CONNECTION_TIMEOUT, "authenticate first"))
