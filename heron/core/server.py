"""The composition root of the core: storage, accounts, hosts, modules, sessions, router.

It knows nothing of sockets; ``heron.app`` wires listeners to it. It is also the
``C2SHost`` every client stream talks to.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from heron import __version__, ns
from heron.config import ConfigError, HostConfig, LimitsConfig, ServerConfig, build_options
from heron.core.accounts import AccountService
from heron.core.admins import Admins
from heron.core.bytestreams import BytestreamBroker
from heron.core.components import ComponentManager
from heron.core.control import Control
from heron.core.metrics import Metrics
from heron.core.module import CoreServices, Module, ModuleManager, Stores
from heron.core.placement import LocalPlacement, RoomPlacement
from heron.core.registry import HostRegistry
from heron.core.router import Router
from heron.core.s2s import S2SLimits, S2SManager
from heron.core.sessions import SessionManager
from heron.credentials import ScramKeys
from heron.jid import JID, InvalidJID
from heron.ratelimit import AuthThrottle
from heron.stanza import Stanza, StanzaCondition, StanzaError, StreamCondition, StreamError
from heron.storage import open_database
from heron.storage.accounts import SqlAccountStore
from heron.storage.db import Database, Migration, SqlStore
from heron.storage.disabled import SqlDisabledAccounts
from heron.storage.fast import FastTokenStore
from heron.stream.c2s import C2SStream
from heron.stream.component import ComponentStream
from heron.stream.dialback import dialback_key
from heron.stream.identity import certificate_names_domain
from heron.stream.s2s import S2SIncoming
from heron.stream.sasl import verify_plain
from heron.xmlstream import Element

log = logging.getLogger(__name__)


class Server:
    version = __version__
    _core: CoreServices  # what every module's context shares; made by start()

    def __init__(self, config: ServerConfig, modules: Mapping[str, type[Module]]) -> None:
        self.config = config
        self.available_modules = modules
        lim = config.limits
        self.apply_limits(lim)
        self.require_tls = config.require_tls
        self.sessions = SessionManager()
        self.placement: RoomPlacement = LocalPlacement()  # a cluster's, set before start()
        self.registries: dict[str, HostRegistry] = {}
        self.services: set[str] = set()  # registries that are services, not user hosts
        self.managers: dict[str, ModuleManager] = {}
        self.router = Router(self.sessions, self.registry_for, self._user_exists)
        self.db: Database | None = None
        self.stores = Stores(None)
        self._accounts: AccountService | None = None
        self._fast: FastTokenStore | None = None
        self.tls_domains: set[str] = set()
        # (method, path, handler) that modules serve on the HTTP listeners (upload); the
        # handler takes and returns aiohttp's request and response.
        self.http_routes: list[tuple[str, str, Callable[[Any], Awaitable[Any]]]] = []
        self.http_base_url = ""  # where clients reach the HTTP side (upload URLs)
        self.metrics = Metrics()
        self.admins = Admins(config)
        self.control = Control()  # heron.app sets its reloader
        self.router.metrics = self.metrics.stanzas
        self.metrics.gauge("heron_c2s_sessions", "Bound client sessions", self._session_gauge)
        self.metrics.gauge(
            "heron_s2s_routes", "Outgoing federation routes", lambda: [({}, len(self.s2s.routes))]
        )
        self.metrics.gauge(
            "heron_components",
            "Connected external components",
            lambda: [({}, len(self.components.connected))],
        )
        s2s = config.s2s
        self.s2s = S2SManager(
            None,  # the wiring sets the connector when federation is on
            self.router.bounce,
            S2SLimits(s2s.connect_timeout_s, s2s.idle_timeout_s, s2s.max_queue),
            deny=frozenset(s2s.deny),
        )
        if s2s.enabled:
            self.router.remote = self.s2s.send
        # XEP-0065: SOCKS5 streams paired and activated for the proxy module's listener.
        self.bytestreams = BytestreamBroker()
        # XEP-0114: each configured component domain is routed to its connection.
        self.components = ComponentManager(config.components)
        for component in config.components:
            self.router.external[component.domain] = self.components.send
        self._dialback_secret = b""
        self._secret = b""
        # XEP-0198: resumable sessions by id, and the timers of those waiting to resume.
        self.sm_sessions: dict[str, C2SStream] = {}
        self._hibernation: dict[str, asyncio.TimerHandle] = {}
        # A cluster: told when a client asks to resume a session this node does not hold
        # (it may hibernate on another node, which then ends it: sm_release).
        self.sm_elsewhere: Callable[[str, JID], None] | None = None
        self._expiring: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._drained: asyncio.Event | None = None  # set by stop(), once no session is left
        self._ending = 0  # sessions being ended (presence, hand-back) right now
        self.auth_throttle = AuthThrottle(lim.auth_limits())

    def apply_limits(self, lim: LimitsConfig) -> None:
        """Parser limits, queue bound and resumption time for streams opened from now on
        (at start, and on reload)."""
        self.limits = lim.parser_limits()
        self.pre_auth_limits = lim.parser_limits(pre_auth=True)
        self.out_queue_bytes = lim.out_queue_bytes
        self.sm_resume_timeout_s = lim.sm_resume_timeout_s
        if hasattr(self, "auth_throttle"):
            self.auth_throttle.limits = lim.auth_limits()

    def db_or_fail(self) -> Database:
        """The open database (only valid once started)."""
        assert self.db is not None, "server not started"
        return self.db

    def core_services(self) -> CoreServices:
        return CoreServices(
            sessions=self.sessions,
            router=self.router,
            accounts=self.accounts,
            fast=self.fast,
            metrics=self.metrics,
            stores=self.stores,
            domains=self,
            http=self,
            bytestreams=self.bytestreams,
            secret=self.derived_secret,
            version=self.version,
            data_dir=self.config.data_dir,
            admins=self.admins,
            control=self.control,
            placement=self.placement,
        )

    def migrations(self, dialect: str) -> list[Migration]:
        """The schema of the core's stores and of every store an enabled module declares."""
        classes: list[type[SqlStore]] = [SqlAccountStore, FastTokenStore, SqlDisabledAccounts]
        for host in self.config.hosts:
            for name in host.modules:
                cls = self.available_modules.get(name)
                if cls is not None:
                    classes.extend(s for s in cls.stores if s not in classes)
        steps: list[Migration] = []
        for store in classes:
            steps.extend(store.migrations_for(dialect))  # type: ignore[arg-type]
        return steps

    @property
    def fast(self) -> FastTokenStore:
        assert self._fast is not None, "server not started"
        return self._fast

    @property
    def accounts(self) -> AccountService:
        assert self._accounts is not None, "server not started"
        return self._accounts

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        data_dir = self.config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # Before modules: their stores use it, with every schema migrated first.
        self.db = await open_database(self.config.storage, data_dir)
        self.stores = Stores(self.db)
        try:
            await self.db.migrate(self.migrations(self.db.dialect))
        except BaseException:
            await self.db.close()
            self.db = None
            raise
        self._fast = self.stores.get(FastTokenStore)
        secret = load_secret(self.config.server_secret_file or data_dir / "secret")
        self._secret = secret
        self._dialback_secret = self.derived_secret("dialback")
        self.s2s.start()
        self._accounts = AccountService(
            self.stores.get(SqlAccountStore),
            secret,
            self.config.scram_iterations,
            self.stores.get(SqlDisabledAccounts),
        )
        self._core = self.core_services()
        for host in self.config.hosts:
            await self.add_host(host)
        for component in self.config.components:
            # Listed in the disco#items of the host it is a subdomain of (else the first).
            parents = [d for d in self.registries if component.domain.endswith("." + d)]
            parent = max(parents, key=len) if parents else self.config.hosts[0].domain
            self.registries[parent].items.setdefault(component.domain, "")
        log.info("Heron %s serving %s", self.version, ", ".join(self.registries))

    # --- hosts and their modules (at start, and on reload) ---------------------------
    async def add_host(self, host: HostConfig) -> None:
        """Serve a virtual host: its registry and its modules, in the configured order."""
        registry = HostRegistry(host.domain)
        self.registries[host.domain] = registry
        manager = ModuleManager(registry)
        self.managers[host.domain] = manager
        for name in host.modules:
            await self._load_module(manager, host, name)

    async def _load_module(self, manager: ModuleManager, host: HostConfig, name: str) -> None:
        cls = self.available_modules.get(name)
        if cls is None:
            raise ConfigError(f'hosts."{host.domain}".modules: unknown module {name!r}')
        ctx = self._core.for_module(
            domain=host.domain,
            registry=manager.registry,
            options=host.module_options.get(name, {}),
            log=logging.LoggerAdapter(
                logging.getLogger(f"heron.modules.{name}"), {"host": host.domain}
            ),
            host=host,
            name=name,
        )
        await manager.load(cls, ctx)

    async def remove_host(self, domain: str) -> None:
        """Stop serving a host: its users' streams end (host-gone), its modules unload."""
        for session in self.sessions.all():
            if session.jid.domain == domain:
                session.close(StreamError(StreamCondition.HOST_GONE, "this host was removed"))
        manager = self.managers.pop(domain, None)
        if manager is not None:
            await manager.unload_all()
        self.registries.pop(domain, None)

    async def reload_modules(self, old: HostConfig, new: HostConfig) -> list[str]:
        """Load, unload or restart the host's modules whose presence or options changed (and
        those requiring them); the others keep running, with their state. The names
        touched."""
        manager = self.managers[new.domain]
        changed = {
            name
            for name in set(old.modules) | set(new.modules)
            if (name in old.modules) != (name in new.modules)
            or old.module_options.get(name, {}) != new.module_options.get(name, {})
        }
        kept = changed & set(manager.modules) & set(new.modules)
        in_place = {  # modules that take new options without a restart (extdisco's pushes)
            name
            for name in sorted(kept)
            if await manager.modules[name].reconfigure(new.module_options.get(name, {}))
        }
        changed -= in_place
        grew = True
        while grew:  # a module needing a changed one starts again after it
            grew = False
            for name in list(manager.modules):
                cls = self.available_modules.get(name)
                if name not in changed and cls is not None and changed & set(cls.requires):
                    changed.add(name)
                    grew = True
        for name in reversed(list(manager.modules)):
            if name in changed:
                await manager.unload(name)
        for name in new.modules:
            if name in changed:
                await self._load_module(manager, new, name)
        return sorted(changed | in_place)

    async def stop(self, drain_s: float = 5.0) -> None:
        """Close every client stream with system-shutdown and wait (up to ``drain_s``) for
        them to end, so that what stream management never saw acknowledged is handed back
        (offline storage) while the modules still run; then the modules stop (the archive
        flushes), then federation, then the database."""
        self._stopping = True
        for timer in self._hibernation.values():
            timer.cancel()
        self._hibernation.clear()
        for stream in [s for s in self.sm_sessions.values() if s.hibernating]:
            await self._end(stream)  # XEP-0198: its unacknowledged messages go offline
        self.components.close_all(StreamError(StreamCondition.SYSTEM_SHUTDOWN, "shutting down"))
        self._drained = asyncio.Event()
        for session in self.sessions.all():
            session.close(StreamError(StreamCondition.SYSTEM_SHUTDOWN, "server shutting down"))
        if len(self.sessions) or self._ending:
            try:
                async with asyncio.timeout(drain_s):
                    await self._drained.wait()
            except TimeoutError:
                log.warning("%d session(s) still open after %ss", len(self.sessions), drain_s)
        if self._expiring:
            await asyncio.wait(set(self._expiring), timeout=drain_s)
        for manager in self.managers.values():
            await manager.unload_all()
        await self.s2s.stop()
        if self.db is not None:
            await self.db.close()
            self.db = None

    # --- login throttling (C2SHost) ----------------------------------------------------
    @staticmethod
    def _account_key(username: str, domain: str) -> str:
        try:
            return str(JID.make(username, domain))
        except InvalidJID:
            return f"{username}@{domain}"

    async def auth_attempt(self, peer: str, username: str, domain: str) -> bool:
        """Wait out the delay earlier failures earned; False when the address is blocked."""
        throttle, account = self.auth_throttle, self._account_key(username, domain)
        if throttle.blocked(peer, account, time.monotonic()):
            return False
        delay = throttle.delay(peer, account, time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)
        return True

    def auth_result(self, peer: str, username: str, domain: str, ok: bool) -> None:
        self.metrics.logins["ok" if ok else "failed"] += 1
        account = self._account_key(username, domain)
        if ok:
            self.auth_throttle.succeeded(peer, account)
        elif self.auth_throttle.failed(peer, account, time.monotonic()):
            log.warning("blocking logins from %s (for %s): too many failed attempts", peer, account)

    def _session_gauge(self) -> list[tuple[dict[str, str], float]]:
        counts: dict[str, int] = {"active": 0, "hibernating": 0}
        for session in self.sessions.all():
            counts["hibernating" if session.hibernating else "active"] += 1
        return [({"state": state}, float(n)) for state, n in counts.items()]

    def derived_secret(self, purpose: str) -> bytes:
        """A key for one purpose, derived from the server secret (stable across restarts)."""
        return hashlib.sha256(f"heron {purpose}\0".encode() + self._secret).digest()

    # --- FAST tokens (C2SHost) ---------------------------------------------------------
    async def fast_issue(
        self, username: str, domain: str, agent: str, mechanism: str
    ) -> tuple[str, float]:
        key = self.derived_secret("fast")
        return await self.fast.issue(username, domain, agent, mechanism, key)

    async def fast_invalidate(self, username: str, domain: str, agent: str) -> None:
        try:
            local = JID.make(username, domain).local or username
        except InvalidJID:
            return
        await self.fast.revoke(local, domain, agent)

    async def fast_verify(
        self, username: str, domain: str, agent: str, mechanism: str, proof: bytes, cb: bytes
    ) -> tuple[bytes, float] | None:
        try:
            local = JID.make(username, domain).local or username
        except InvalidJID:
            return None
        if await self.accounts.disabled.is_disabled(local, domain):
            return None  # XEP-0133: a disabled account's tokens do not log it in either
        key = self.derived_secret("fast")
        return await self.fast.verify(local, domain, agent, mechanism, proof, cb, key)

    # --- federation (S2SHost) ----------------------------------------------------------
    def dialback_allowed(self, domain: str) -> bool:
        s2s = self.config.s2s
        return not s2s.require_valid_certificates and domain not in s2s.deny

    def dialback_key(self, receiving: str, originating: str, stream_id: str) -> str:
        return dialback_key(self._dialback_secret, receiving, originating, stream_id)

    def peer_certificate_names(self, stream: S2SIncoming) -> bool:
        return stream.tls is not None and stream.tls.peer_certificate is not None

    def certificate_matches(self, stream: S2SIncoming, domain: str) -> bool:
        der = stream.tls.peer_certificate if stream.tls is not None else None
        if der is None or domain in self.config.s2s.deny:
            return False
        return certificate_names_domain(der, domain)

    async def verify_dialback(
        self, receiving: str, originating: str, stream_id: str, key: str
    ) -> bool:
        return await self.s2s.verify(receiving, originating, stream_id, key)

    async def remote_stanza(self, stanza: Stanza) -> None:
        await self.router.route(stanza)

    def offers_bidi(self) -> bool:
        return self.s2s.connect is not None  # XEP-0288: on whenever we federate

    def adopt_route(self, local: str, remote: str, stream: S2SIncoming) -> None:
        if remote not in self.config.s2s.deny:
            self.s2s.adopt(local, remote, stream)

    # --- hosts ------------------------------------------------------------------------
    def registry_for(self, domain: str) -> HostRegistry | None:
        return self.registries.get(domain)

    def is_local_host(self, domain: str) -> bool:
        """A host users log in to (service domains such as conference.* are not)."""
        return domain in self.registries and domain not in self.services

    def serves_domain(self, domain: str) -> bool:
        return domain in self.registries or domain in self.components

    def add_service(self, domain: str) -> HostRegistry:
        """A service domain (a MUC service) routed to like a host, with its own tables."""
        if domain in self.registries:
            raise ConfigError(f"{domain}: already a host or a service of this server")
        registry = self.registries[domain] = HostRegistry(domain)
        self.services.add(domain)
        return registry

    def remove_service(self, domain: str) -> None:
        if domain in self.services:
            self.services.discard(domain)
            self.registries.pop(domain, None)

    # --- external components (ComponentHost) -------------------------------------------
    def component_secret(self, domain: str) -> str | None:
        return self.components.secret(domain)

    def component_connected(self, stream: ComponentStream) -> None:
        self.components.attach(stream)

    async def component_stanza(self, stream: ComponentStream, stanza: Stanza) -> None:
        await self.router.route(stanza)

    def component_ended(self, stream: ComponentStream) -> None:
        self.components.detach(stream)

    def tls_available(self, domain: str) -> bool:
        return domain in self.tls_domains

    async def _user_exists(self, jid: JID) -> bool:
        return await self.accounts.exists(jid)

    # --- C2SHost ----------------------------------------------------------------------
    @property
    def scram_iterations(self) -> int:
        return self.accounts.iterations

    async def scram_upgrade(self, username: str, domain: str, keys: ScramKeys) -> None:
        await self.accounts.upgrade_keys(JID.make(username, domain), keys)

    async def keys_for(self, username: str, domain: str, hash_name: str) -> tuple[ScramKeys, bool]:
        return await self.accounts.keys_for(username, domain, hash_name)

    async def verify_plain(self, password: str, keys: ScramKeys) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, verify_plain, password, keys)

    def stream_features(self, domain: str, authenticated: bool) -> list[Element]:
        registry = self.registries.get(domain)
        if registry is None:
            return []
        providers = registry.postauth_features if authenticated else registry.preauth_features
        return [f for f in (p() for p in providers) if f is not None]

    async def preauth_iq(
        self, domain: str, stanza: Stanza, peer: str, state: dict[str, object]
    ) -> Element | None:
        registry = self.registries.get(domain)
        payload = stanza.payload
        type_ = stanza.element.attrs.get("type", "")
        if registry is None or payload is None:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
        handler = registry.preauth_iq.get((type_, payload.ns))
        if handler is None:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
        return await handler(stanza, peer, state)

    def bind(self, session: C2SStream) -> None:
        old = self.sessions.bind(session)
        if old is not None:
            # RFC 6120 §7.7.2.2: the newer session wins; the old one is told why it ends.
            log.info("%s replaced by a new login", session.jid)
            old.close(StreamError(StreamCondition.CONFLICT, "replaced by a new connection"))

    async def stanza(self, session: C2SStream, stanza: Stanza) -> None:
        if stanza.kind == "presence" and stanza.to is None:
            type_ = stanza.type
            if type_ == "available":
                session.set_presence(stanza.element)
                self.sessions.presence_changed(session)
            elif type_ == "unavailable":
                session.set_presence(None)
                self.sessions.presence_changed(session)
        await self.router.route(stanza, session)

    async def nonza(self, session: C2SStream, element: Element) -> bool:
        registry = self.registries.get(session.jid.domain)
        handler = registry.nonzas.get(element.ns) if registry is not None else None
        if handler is None:
            return False
        await handler(session, element)
        return True

    # --- stream management (C2SHost) ----------------------------------------------------
    def sm_enabled(self, session: C2SStream) -> None:
        assert session.sm is not None
        self.sm_sessions[session.sm.id] = session

    def sm_find(self, session: C2SStream, previd: str) -> C2SStream | None:
        old = self.sm_sessions.get(previd)
        if old is None and self.sm_elsewhere is not None and session.username is not None:
            self.sm_elsewhere(previd, JID.make(session.username, session.domain))
        if old is None or old.superseded or session.username is None:
            return None
        if old.jid.bare != JID.make(session.username, session.domain):
            return None  # another account's session: as if it did not exist
        return old

    def sm_takeover(self, old: C2SStream, new: C2SStream) -> None:
        assert new.sm is not None
        timer = self._hibernation.pop(new.sm.id, None)
        if timer is not None:
            timer.cancel()
        old.superseded = True
        old.hibernating = False
        self.sm_sessions[new.sm.id] = new
        self.sessions.unbind(old)
        self.sessions.bind(new)
        if not old.is_closed:
            old.close_reason = "resumed on another connection"
            old.link.close()  # a half-open old connection: dropped without a word

    def sm_release(self, previd: str, account: JID) -> None:
        """The client of ``previd`` came back on another node and could not resume there
        (XEP-0198 state lives in one process): end the session here now, handing what it
        never acknowledged back to the router (to the client's new session, or offline)
        instead of holding it until the resumption timeout."""
        session = self.sm_sessions.get(previd)
        if session is None or session.superseded or session.jid.bare != account:
            return
        timer = self._hibernation.pop(previd, None)
        if timer is not None:
            timer.cancel()
        if session.hibernating:
            self._expire(session)
        else:  # a half-open connection the client has given up on
            session.close(StreamError(StreamCondition.CONFLICT, "the client came back elsewhere"))

    def _expire(self, session: C2SStream) -> None:
        task = asyncio.ensure_future(self._end(session))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def ended(self, session: C2SStream) -> None:
        if session.superseded:
            return
        sm = session.sm
        if sm is not None and sm.resumable and session.lost and not self._stopping:
            # XEP-0198 §5: the client may come back; until then the user stays online and
            # what arrives is kept.
            session.hibernating = True
            loop = asyncio.get_running_loop()
            self._hibernation[sm.id] = loop.call_later(
                self.sm_resume_timeout_s, self._expire, session
            )
            session.log.info("hibernating %s for %ds", session.jid, self.sm_resume_timeout_s)
            return
        await self._end(session)

    async def _end(self, session: C2SStream) -> None:
        session.hibernating = False
        sm = session.sm
        if sm is not None:
            self._hibernation.pop(sm.id, None)
            if self.sm_sessions.get(sm.id) is session:
                del self.sm_sessions[sm.id]
        if not session.was_bound or not self.sessions.unbind(session):
            return
        self._ending += 1
        try:
            if session.is_available:
                session.set_presence(None)
                unavailable = Element("presence", ns.CLIENT, {"type": "unavailable"})
                unavailable.attrs["from"] = str(session.jid)
                registry = self.registries.get(session.jid.domain)
                if registry is not None:
                    ended = Stanza(unavailable, None, session.jid)
                    await registry.run_hooks("session/ended", ended)
            if sm is not None:
                await self._hand_back(session, list(sm.unacked))
        finally:
            self._ending -= 1
        if self._drained is not None and not len(self.sessions) and not self._ending:
            self._drained.set()  # stop() waits for the last one, its messages handed back

    async def _hand_back(self, session: C2SStream, unacked: list[Element]) -> None:
        """XEP-0198 §5: messages the client never acknowledged are not lost: routed again,
        to the account's other resources or to offline storage."""
        for el in unacked:
            if el.tag != "message" or el.attrs.get("type", "normal") not in ("chat", "normal"):
                continue
            if any(child.ns == ns.CARBONS for child in el.elements()):
                continue  # a copy of a message that went elsewhere anyway
            try:
                sender = JID.parse(el.attrs.get("from", ""))
            except InvalidJID:
                continue
            copy = el.copy()
            copy.attrs["to"] = str(session.jid.bare)
            # "redelivered": archives and the like have seen this message already.
            await self.router.route(Stanza(copy, session.jid.bare, sender, {"redelivered": True}))


def load_secret(path: Path) -> bytes:
    """The server secret (fake SCRAM salts for unknown users); made on first start."""
    if path.exists():
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return data


__all__ = ["Server", "build_options"]
