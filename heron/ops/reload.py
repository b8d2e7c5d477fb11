"""Live changes (SIGHUP, `heron reload`, the XEP-0133 reload command).

The configuration file and the certificates are read and checked in full before anything
changes: a file that does not validate, or a certificate that does not load, is refused
with the reason and the running configuration stays. Then, in order: administrators and
limits (for streams opened from now on), hosts removed (their users' streams end with
host-gone) and added, modules whose presence or options changed on a kept host (restarted
alone; the others keep their state), certificates (new handshakes), listeners removed and
added. Connected sessions stay connected. What only a restart can change (storage, the data
directory, the cluster, federation and HTTP settings, components) is reported as such.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

from heron.app import RunningServer, certificates_for, open_listener
from heron.config import ConfigError, ServerConfig, load_config
from heron.core.control import ReloadReport
from heron.log import setup_logging
from heron.modules import AVAILABLE
from heron.stream.sasl import tls_server_end_point
from heron.tls import TlsError, renew_sni_context

log = logging.getLogger(__name__)

RESTART_ONLY = ("data_dir", "storage", "cluster", "s2s", "http", "components", "server_secret_file")


class ConfigReloader:
    """The `Reloader` of a server started from a configuration file."""

    def __init__(self, running: RunningServer, path: Path) -> None:
        self.running = running
        self.path = path
        self._lock = asyncio.Lock()

    def _same_node(self, new: ServerConfig) -> ServerConfig:
        """A worker of `heron serve --workers` runs as `<node>-<n>`, not as the file's
        `cluster.node`: its own name is not a change the file makes."""
        old = self.running.server.config.cluster
        if old is None or new.cluster is None or not old.node.startswith(new.cluster.node + "-"):
            return new
        return replace(new, cluster=replace(new.cluster, node=old.node))

    async def reload(self) -> ReloadReport:
        async with self._lock:
            try:
                new = self._same_node(load_config(self.path, known_modules=AVAILABLE))
                loop = asyncio.get_running_loop()
                certs = await loop.run_in_executor(None, certificates_for, new)
            except (ConfigError, TlsError, OSError) as exc:
                log.error("reload refused, the running configuration stays: %s", exc)
                return ReloadReport(False, (f"refused: {exc}",))
            try:
                lines = await self._apply(new, certs)
            except (ConfigError, TlsError) as exc:
                log.error("reload stopped: %s", exc)
                return ReloadReport(False, (f"refused: {exc}",))
            for line in lines:
                log.info("reload: %s", line)
            log.info("configuration reloaded from %s", self.path)
            return ReloadReport(True, tuple(lines) or ("nothing changed",))

    async def _apply(self, new: ServerConfig, certs: dict[str, tuple[Path, Path]]) -> list[str]:
        server = self.running.server
        old = server.config
        lines = [
            f"{key}: changed; takes effect at the next restart"
            for key in RESTART_ONLY
            if getattr(old, key) != getattr(new, key)
        ]
        # What cannot change live stays as it runs, so that the rest stays consistent.
        new = replace(new, **{key: getattr(old, key) for key in RESTART_ONLY})
        kept = {h.domain for h in old.hosts} & {h.domain for h in new.hosts}
        # Module options first, on a copy: a module that refuses its new options leaves
        # the host as it was.
        server.config = new
        db = server.db_or_fail()
        await db.migrate(server.migrations(db.dialect))
        for domain in sorted(kept):
            before, after = old.host(domain), new.host(domain)
            assert before is not None
            assert after is not None
            try:
                touched = await server.reload_modules(before, after)
            except ConfigError:
                server.config = old
                await server.reload_modules(after, before)
                raise
            if touched:
                lines.append(f"{domain}: modules restarted: {', '.join(touched)}")
        server.admins.update(new)
        if old.admins != new.admins or any(old.admins_of(d) != new.admins_of(d) for d in kept):
            lines.append("admins: updated")
        if old.limits != new.limits:
            self._limits(new)
            lines.append("limits: applied to new connections")
        for host in old.hosts:
            if new.host(host.domain) is None:
                await server.remove_host(host.domain)
                lines.append(f"{host.domain}: host removed")
        for host in new.hosts:
            if old.host(host.domain) is None:
                await server.add_host(host)
                lines.append(f"{host.domain}: host added")
        lines += await self._certificates(new, certs)
        lines += await self._listeners(old, new)
        if old.logging != new.logging:
            setup_logging(new.logging.level, new.logging.format)
            lines.append(f"logging: level {new.logging.level}, format {new.logging.format}")
        return lines

    def _limits(self, new: ServerConfig) -> None:
        running = self.running
        running.server.apply_limits(new.limits)
        wiring = running.wiring
        if wiring is not None:
            wiring.policy = new.limits
            wiring.guard.limits = new.limits.connection_limits()
            for _spec, listener in running.by_spec:
                if hasattr(listener, "policy"):
                    listener.policy = wiring.policy

    async def _certificates(
        self, new: ServerConfig, certs: dict[str, tuple[Path, Path]]
    ) -> list[str]:
        running, wiring = self.running, self.running.wiring
        if wiring is None:
            return []
        renew_sni_context(wiring.tls_context, certs, new.hosts[0].domain)
        loop = asyncio.get_running_loop()
        bindings = await loop.run_in_executor(None, _bindings, certs)
        wiring.bindings.clear()
        wiring.bindings.update(bindings)
        running.certificates = {d: c for d, (c, _k) in certs.items()}
        running.server.tls_domains = set(certs)
        lines = [f"certificates: {len(certs)} loaded again for new connections"]
        s2s = wiring.s2s_tls
        if s2s is not None:
            if new.s2s.require_valid_certificates:
                lines.append("s2s certificates: take effect at the next restart")
            else:  # incoming server streams pick certificates by SNI like clients'
                renew_sni_context(s2s.server_context, certs, new.hosts[0].domain)
        return lines

    async def _listeners(self, old: ServerConfig, new: ServerConfig) -> list[str]:
        running, lines = self.running, []
        wanted = list(new.listeners)
        for spec, listener in list(running.by_spec):
            if spec in wanted:
                wanted.remove(spec)
                continue
            await listener.stop()
            running.by_spec.remove((spec, listener))
            running.listeners.remove(listener)
            if not any(other.kind == spec.kind for other, _l in running.by_spec):
                running.ports.pop(spec.kind, None)
            lines.append(f"listener {spec.kind} {spec.host}:{spec.port}: closed")
        for spec in wanted:
            await open_listener(running, spec)
            lines.append(f"listener {spec.kind} {spec.host}:{spec.port}: opened")
        return lines


def _bindings(certs: dict[str, tuple[Path, Path]]) -> dict[str, bytes]:
    """tls-server-end-point data of each certificate (RFC 5929), for channel binding."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    result = {}
    for domain, (cert, _key) in certs.items():
        pem = x509.load_pem_x509_certificate(cert.read_bytes())
        result[domain] = tls_server_end_point(pem.public_bytes(Encoding.DER))
    return result
