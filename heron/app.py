"""Wiring: the core server plus its listeners, from a config. Used by `heron serve` and tests."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from heron.cluster.node import ClusterNode, make_ended
from heron.config import ConfigError, LimitsConfig, ListenerConfig, ServerConfig
from heron.core.server import Server
from heron.modules import AVAILABLE
from heron.ratelimit import ConnectionGuard
from heron.stream.sasl import tls_server_end_point
from heron.tls import (
    TlsError,
    check_certificate,
    context_for,
    ensure_certificate,
    s2s_client_context,
    s2s_server_context,
    sni_context,
)
from heron.transport.bosh import Bosh
from heron.transport.component import ComponentListener
from heron.transport.http import HttpListener
from heron.transport.s2s import S2SConnector, S2SListener, S2STls
from heron.transport.socks5 import Socks5Listener
from heron.transport.tcp import C2SListener, TlsProvider

log = logging.getLogger(__name__)


class Listener(Protocol):
    async def stop(self) -> None: ...


@dataclass
class Wiring:
    """What the listeners are built from, kept so that a reload can add listeners, renew
    certificates and change limits (heron.ops.reload)."""

    tls_context: ssl.SSLContext
    bindings: dict[str, bytes]  # domain → tls-server-end-point data
    provider: TlsProvider
    policy: LimitsConfig  # the traffic policy's figures (heron.transport.runner)
    guard: ConnectionGuard
    s2s_tls: S2STls | None
    bosh: Bosh
    reuse_port: bool = False  # several processes share the ports (heron serve --workers)


@dataclass
class RunningServer:
    server: Server
    listeners: list[Listener] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)  # listener kind → bound port
    certificates: dict[str, Path] = field(default_factory=dict)  # domain → certificate file
    connector: S2SConnector | None = None  # outgoing federation, when enabled
    cluster: ClusterNode | None = None  # with [cluster]: this node of several
    wiring: Wiring | None = None
    by_spec: list[tuple[ListenerConfig, Listener]] = field(default_factory=list)
    """The configured listeners (not the SOCKS5 one a module asks for), for reloads."""

    async def stop(self) -> None:
        for listener in self.listeners:
            await listener.stop()
        if self.connector is not None:
            await self.connector.stop()
        await self.server.stop()
        if self.cluster is not None:
            await self.cluster.stop()


def certificates_for(config: ServerConfig) -> dict[str, tuple[Path, Path]]:
    certs: dict[str, tuple[Path, Path]] = {}
    for host in config.hosts:
        if host.cert is not None and host.key is not None:
            # A certificate for another name would only fail in every client: refuse to start.
            problems = check_certificate(host.cert, host.domain)
            if problems:
                raise TlsError("; ".join(problems))
            certs[host.domain] = (host.cert, host.key)
        else:
            cert, key = ensure_certificate(host.domain, config.data_dir / "certs")
            log.info("using certificate %s for %s (trust this file in clients)", cert, host.domain)
            certs[host.domain] = (cert, key)
    for component in config.components:
        # Remote servers reach a component's domain over s2s: TLS needs a certificate for it.
        certs[component.domain] = ensure_certificate(component.domain, config.data_dir / "certs")
    return certs


def raise_open_files_limit(connections: int) -> None:
    """Each connection is a file: lift the soft limit toward the hard one, and say if short."""
    wanted = connections + 256  # the database, certificates, logs
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit: %s", exc)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open-files limit %d is below limits.max_connections + 256 (%d): raise it (ulimit -n)",
            soft,
            wanted,
        )


def _s2s_tls(config: ServerConfig, certs: dict[str, tuple[Path, Path]]) -> S2STls:
    """TLS for federation: certificates requested from peers only when they are required."""
    s2s = config.s2s
    strict = s2s.require_valid_certificates
    server_context = s2s_server_context(
        certs, config.hosts[0].domain, request_certificates=strict, ca_file=s2s.ca_file
    )
    clients: dict[str, ssl.SSLContext] = {}
    default = config.hosts[0].domain

    def client_context(domain: str) -> ssl.SSLContext | None:
        if domain not in clients:
            # A service without a certificate of its own (conference.example.org) shows its
            # host's, as the listeners do by SNI: without one its rooms could not federate.
            cert, key = context_for(certs, domain) or certs[default]
            clients[domain] = s2s_client_context(cert, key, verify=strict, ca_file=s2s.ca_file)
        return clients.get(domain)

    return S2STls(server_context, client_context, use_external=True)


def _base_url(config: ServerConfig, kind: str, host: str, port: int) -> str:
    """The configured public URL, else this listener's own address."""
    if config.http.public_url:
        return config.http.public_url
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (comparing, not binding)
        host = config.hosts[0].domain
    elif ":" in host:
        host = f"[{host}]"
    scheme = "https" if kind == "https" else "http"
    return f"{scheme}://{host}:{port}"


async def start(config: ServerConfig, *, reuse_port: bool = False) -> RunningServer:
    """Start the server and its listeners. ``reuse_port`` binds every listening socket with
    SO_REUSEPORT, so that several worker processes can share the same ports."""
    server = Server(config, AVAILABLE)
    running = RunningServer(server)
    if config.cluster is not None:
        # Made before the modules start: the room module asks it where each room runs.
        running.cluster = ClusterNode(
            config.cluster,
            server.sessions,
            server.router.route,
            make_ended(server.registry_for),
            server.limits,
        )
        server.placement = running.cluster.rooms
        server.sm_elsewhere = running.cluster.sm_elsewhere
        running.cluster.sm_release = server.sm_release
    try:
        await server.start()
        if running.cluster is not None:
            await running.cluster.start()
        loop = asyncio.get_running_loop()
        certs = await loop.run_in_executor(None, certificates_for, config)
        running.certificates = {d: c for d, (c, _k) in certs.items()}
        context = sni_context(certs, config.hosts[0].domain)
        bindings: dict[str, bytes] = {}
        for domain, (cert_path, _key) in certs.items():
            pem = x509.load_pem_x509_certificate(cert_path.read_bytes())
            bindings[domain] = tls_server_end_point(pem.public_bytes(Encoding.DER))
        server.tls_domains = set(certs)
        default = config.hosts[0].domain

        def end_point(domain: str) -> bytes | None:
            return bindings.get(domain) or bindings.get(default)

        provider = TlsProvider(context, end_point)
        lim = config.limits
        # One guard for every listener: the per-address counts span all ports.
        guard = ConnectionGuard(lim.connection_limits())
        raise_open_files_limit(lim.max_connections)
        s2s_tls = _s2s_tls(config, certs) if config.s2s.enabled else None
        if s2s_tls is not None:
            running.connector = S2SConnector(
                server,
                s2s_tls,
                policy=lim,
                peers=config.s2s.peers,
                resolver=config.s2s.resolver,
            )
            server.s2s.connect = running.connector.connect
        bosh = Bosh(config.http.bosh_max_wait_s, config.http.bosh_max_inactivity_s)
        running.wiring = Wiring(context, bindings, provider, lim, guard, s2s_tls, bosh, reuse_port)
        for spec in config.listeners:
            await open_listener(running, spec)
        for request in server.bytestreams.listen_requests:
            # XEP-0065: the proxy module asked for its SOCKS5 listener.
            socks5 = Socks5Listener(server.bytestreams, reuse_port=reuse_port)
            port = await socks5.start(request.host, request.port)
            request.bound.set_result(port)
            running.listeners.append(socks5)
            running.ports.setdefault("proxy65", port)
            log.info("listening for SOCKS5 bytestreams on %s:%d", request.host, port)
    except BaseException:
        await running.stop()
        raise
    return running


async def open_listener(running: RunningServer, spec: ListenerConfig) -> Listener:
    """Start one configured listener (at start, or when a reload adds it)."""
    server, config, wiring = running.server, running.server.config, running.wiring
    assert wiring is not None
    policy, guard = wiring.policy, wiring.guard
    listener: C2SListener | S2SListener | HttpListener | ComponentListener
    reuse = wiring.reuse_port
    if spec.kind == "component":
        listener = ComponentListener(server, policy=policy, guard=guard, reuse_port=reuse)
    elif spec.kind in ("http", "https"):
        listener = HttpListener(
            server,
            config.http,
            tls=wiring.tls_context if spec.kind == "https" else None,
            policy=policy,
            guard=guard,
            bosh=wiring.bosh,
            reuse_port=reuse,
        )
    elif spec.kind in ("s2s", "s2s_tls"):
        if wiring.s2s_tls is None:
            raise ConfigError("listeners: an s2s listener needs s2s.enabled = true")
        listener = S2SListener(
            server,
            wiring.s2s_tls,
            policy=policy,
            guard=guard,
            direct_tls=spec.kind == "s2s_tls",
            reuse_port=reuse,
        )
    else:
        listener = C2SListener(
            server,
            wiring.provider,
            direct_tls=spec.kind == "c2s_tls",
            policy=policy,
            guard=guard,
            reuse_port=reuse,
        )
    port = await listener.start(spec.host, spec.port)
    if isinstance(listener, HttpListener) and not server.http_base_url:
        server.http_base_url = _base_url(config, spec.kind, spec.host, port)
        log.info("chat page at %s%s", server.http_base_url, config.http.chat_path)
    running.listeners.append(listener)
    running.by_spec.append((spec, listener))
    running.ports.setdefault(spec.kind, port)
    log.info("listening for %s on %s:%d", spec.kind, spec.host, port)
    return listener


async def serve(config: ServerConfig, *, reuse_port: bool = False) -> None:
    """Run until SIGINT/SIGTERM (`heron serve` uses heron.ops.run's, with reload and the
    admin socket)."""
    running = await start(config, reuse_port=reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await running.stop()
