"""The configuration as frozen values. `heron.config.loader` builds them from TOML."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from heron.ratelimit import AuthLimits, ConnectionLimits
from heron.xmlstream.limits import Limits

# What the parser, the connection guard and the login throttle enforce when nobody
# configures them; the [limits] table starts from these (each is defined once, there).
_PARSER: Final = Limits()
_CONNECTIONS: Final = ConnectionLimits()
_LOGINS: Final = AuthLimits()

DEFAULT_MODULES: Final[tuple[str, ...]] = (
    "disco",
    "ping",
    "version",
    "time",
    "register",
    "roster",
    "offline",
    "vcard",
    "private",
    "blocking",
    "antispam",
    "carbons",
    "csi",
    "mam",
    "push",
    "muc",
    "pubsub",
    "upload",
    "adhoc",
)
LISTENER_KINDS: Final[frozenset[str]] = frozenset(
    {"c2s", "c2s_tls", "s2s", "s2s_tls", "http", "https", "component"}
)
COMPONENT_PORT: Final = 5347  # XEP-0114's customary port
STORAGE_ENGINES: Final[frozenset[str]] = frozenset({"sqlite", "postgresql"})
LOG_LEVELS: Final[tuple[str, ...]] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SCRAM_ITERATIONS: Final = 4096


def _no_options() -> Mapping[str, Mapping[str, object]]:
    return MappingProxyType({})


def _no_peers() -> Mapping[str, str]:
    return MappingProxyType({})


class ConfigError(Exception):
    """A refused configuration; the message names the key path and the reason."""


def parses(parse: Callable[[str], object], what: str) -> Callable[[str], str | None]:
    """An option's ``check=`` from a parser: None when ``parse`` takes the value, else
    "is not <what>" with the parser's reason (its ValueError, which InvalidJID is)."""

    def check(text: str) -> str | None:
        try:
            parse(text)
        except ValueError as exc:
            return f"is not {what} ({exc})"
        return None

    return check


def option(
    default: Any,
    *,
    min: float | str | None = None,
    max: float | str | None = None,
    choices: Collection[str] | None = None,
    above: float | None = None,
    needs: str | None = None,
    check: Callable[[Any], str | None] | None = None,
) -> Any:
    """A module option's field with its bounds, checked by `build_options`:
    ``max_items: int = option(256, min=1)``; ``mode: str = option("roster", choices=MODES)``;
    ``timeout_s: float = option(30.0, above=0)`` (strictly greater).

    A bound may name another field: ``quota: int = option(..., min="max_file_size")``;
    ``needs="other"`` makes a true boolean require the boolean ``other`` to be true too.
    ``check`` validates what is not a bound (the syntax of a JID or a URI): it returns the
    reason a value is refused, or None; a tuple's items are checked one by one."""
    bounds = {
        "min": min,
        "max": max,
        "choices": choices,
        "above": above,
        "needs": needs,
        "check": check,
    }
    return dataclasses.field(
        default=default, metadata={k: v for k, v in bounds.items() if v is not None}
    )


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    kind: str
    """`c2s` (plain TCP, then STARTTLS), `c2s_tls` (Direct TLS, XEP-0368), `s2s`, `s2s_tls`,
    `http` or `https` (WebSocket, BOSH, upload, the chat page), or `component` (external
    components, XEP-0114; port 5347 unless given)."""
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_stanza_bytes: int = option(_PARSER.max_stanza_bytes, min=1024)
    pre_auth_max_stanza_bytes: int = option(16384, min=1024)
    """Before login a stanza is smaller (the limit is never above max_stanza_bytes)."""
    max_depth: int = option(_PARSER.max_depth, min=4)
    max_attrs: int = option(_PARSER.max_attrs, min=4)
    max_attr_bytes: int = option(_PARSER.max_attr_bytes, min=256)
    auth_timeout_s: float = option(30.0, above=0)
    header_timeout_s: float = option(10.0, above=0)
    out_queue_bytes: int = option(1048576, min=4096)
    stanza_timeout_s: float = option(60.0, above=0)
    """A stanza (or a stream header) begun but not finished by then ends the stream."""
    bytes_per_s: int = option(262144, min=1024)
    """Each session's read rate; beyond it reading pauses (TCP backpressure)."""
    bytes_burst: int = option(1048576, min=1024)
    stanzas_per_s: float = option(20.0, above=0)
    """Each session's stanza rate; beyond it reading pauses (docs/security.md: why 20)."""
    stanzas_burst: int = option(500, min=1)
    max_backlog_s: float = option(30.0, above=0)
    """A session held back by its rates without a break for this long is disconnected."""
    max_connections: int = option(_CONNECTIONS.max_connections, min=1)
    max_connections_per_ip: int = option(_CONNECTIONS.max_per_ip, min=1)
    """Per address (IPv6: per /64), logged in or not."""
    max_unauthenticated_per_ip: int = option(_CONNECTIONS.max_unauthenticated_per_ip, min=1)
    new_connections_per_ip_per_s: float = option(_CONNECTIONS.new_per_ip_per_s, above=0)
    new_connections_per_ip_burst: int = option(_CONNECTIONS.new_per_ip_burst, min=1)
    auth_block_after: int = option(_LOGINS.block_after, min=1)
    """Failed logins for one account from one address within auth_window_s before that
    address is refused for that account (others behind the same address are not)."""
    auth_block_address_after: int = option(_LOGINS.address_block_after, min=1)
    """Failed logins from one address, whatever the accounts, before it is refused."""
    auth_window_s: float = option(_LOGINS.window_s, above=0)
    auth_block_s: float = option(_LOGINS.block_s, above=0)
    auth_max_delay_s: float = option(_LOGINS.max_delay_s, above=0)
    """Failed logins delay later attempts (per address and per account), doubling to this."""
    sm_resume_timeout_s: float = option(300.0, above=0)
    """How long a session whose connection died waits to be resumed (XEP-0198)."""

    def parser_limits(self, *, pre_auth: bool = False) -> Limits:
        """What the XML parser enforces, after login or (``pre_auth``) before it."""
        size = self.max_stanza_bytes
        if pre_auth:
            size = min(self.pre_auth_max_stanza_bytes, size)
        return Limits(
            max_stanza_bytes=size,
            max_depth=self.max_depth,
            max_attrs=self.max_attrs,
            max_attr_bytes=self.max_attr_bytes,
        )

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(
            max_connections=self.max_connections,
            max_per_ip=self.max_connections_per_ip,
            max_unauthenticated_per_ip=self.max_unauthenticated_per_ip,
            new_per_ip_per_s=self.new_connections_per_ip_per_s,
            new_per_ip_burst=self.new_connections_per_ip_burst,
        )

    def auth_limits(self) -> AuthLimits:
        return AuthLimits(
            max_delay_s=self.auth_max_delay_s,
            block_after=self.auth_block_after,
            address_block_after=self.auth_block_address_after,
            window_s=self.auth_window_s,
            block_s=self.auth_block_s,
        )


@dataclass(frozen=True, slots=True)
class HostConfig:
    domain: str
    cert: Path | None = None
    key: Path | None = None
    modules: tuple[str, ...] = DEFAULT_MODULES
    module_options: Mapping[str, Mapping[str, object]] = field(default_factory=_no_options)
    """Raw option tables by module name; each module checks its own with `build_options`."""
    admins: tuple[str, ...] = ()
    """Administrators of this host only (bare JIDs), besides the server-wide `admins`."""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    engine: str = "sqlite"
    """`sqlite` (one file, the embedded default) or `postgresql`."""
    path: Path | None = None
    """SQLite: the database file; None means `data_dir/heron.db`."""
    url: str = ""
    """PostgreSQL: `postgresql://user[:password]@host:port/database`."""
    password_file: Path | None = None
    """PostgreSQL: a file holding the password, instead of writing it in `url`."""
    pool_size: int = 10
    """PostgreSQL: connections in the pool."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Several Heron nodes serving the same domains (docs/cluster.md)."""

    node: str
    """This node's name, unique in the cluster."""
    redis_url: str
    """The session registry (and the routing bus, unless `nats_url` is set)."""
    nats_url: str = ""
    """The routing bus on NATS instead of Redis pub/sub."""
    lease_s: float = 5.0
    """A node silent this long is taken for dead and its sessions are removed."""
    prefix: str = "heron"
    """What the cluster's Redis keys and bus channels start with (clusters sharing a Redis
    need different ones)."""


@dataclass(frozen=True, slots=True)
class S2SConfig:
    """Federation. Outgoing connections need no listener; incoming ones an `s2s` listener."""

    enabled: bool = True
    require_valid_certificates: bool = False
    """Peers must present a certificate `ca_file` (or the system store) trusts, and
    authenticate with it (SASL EXTERNAL); dialback is then refused."""
    ca_file: Path | None = None
    peers: Mapping[str, str] = field(default_factory=_no_peers)
    """domain → "host:port", used instead of DNS (private deployments, tests)."""
    deny: tuple[str, ...] = ()
    """Domains never federated with, in either direction."""
    resolver: str | None = None
    """A DNS server "host:port" for SRV and address lookups instead of the system's."""
    connect_timeout_s: float = 30.0
    idle_timeout_s: float = 600.0
    max_queue: int = 500
    """Stanzas held per remote domain while its stream is being set up."""


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The HTTP side (`http`/`https` listeners): WebSocket (RFC 7395), BOSH (XEP-0206),
    connection discovery (XEP-0156), the chat page, and routes modules add (upload)."""

    websocket_path: str = "/xmpp-websocket"
    bosh_path: str = "/http-bind"
    chat_path: str = "/chat"
    public_url: str = ""
    """How clients reach this server's HTTP side ("https://chat.example.org"), for discovery
    and upload URLs; empty: the address each request came to."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses whose X-Forwarded-For/-Proto headers are believed."""
    cors_origins: tuple[str, ...] = ("*",)
    """Origins allowed to use BOSH, upload and WebSocket from a web page; "*" means any (and
    then no credentials are ever allowed)."""
    bosh_max_wait_s: int = 60
    bosh_max_inactivity_s: int = 60
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    """Addresses that may read /metrics (OpenMetrics); empty: nobody."""
    websocket_see_other_uri: str = ""
    """When set, WebSocket clients are sent there (RFC 7395 §3.6.1), e.g. while moving."""
    web_dir: Path | None = None
    """Where the chat page's web client is installed (`make web`); None: `web/` in the
    project."""


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    """An external component (XEP-0114) allowed to serve `domain` (a gateway, a bot)."""

    domain: str
    secret: str
    """The shared secret of the handshake (at least 16 characters)."""
    replace: bool = False
    """A second connection for the domain replaces the first; by default it is refused."""


LOG_FORMATS: Final[tuple[str, ...]] = ("text", "json")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"
    """`text` (one line a record) or `json` (one object a line, for log collectors)."""


DEFAULT_LISTENERS: Final[tuple[ListenerConfig, ...]] = (
    ListenerConfig("c2s", "127.0.0.1", 5222),
    ListenerConfig("c2s_tls", "127.0.0.1", 5223),
    ListenerConfig("http", "127.0.0.1", 5280),
    ListenerConfig("https", "127.0.0.1", 5443),
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The whole server. `ServerConfig()` is the embedded default: `localhost` on loopback."""

    data_dir: Path = Path("data")
    admins: tuple[str, ...] = ()
    """Administrators of every host (bare JIDs): ad-hoc admin commands (XEP-0133)."""
    hosts: tuple[HostConfig, ...] = (HostConfig("localhost"),)
    listeners: tuple[ListenerConfig, ...] = DEFAULT_LISTENERS
    limits: LimitsConfig = LimitsConfig()
    storage: StorageConfig = StorageConfig()
    logging: LoggingConfig = LoggingConfig()
    s2s: S2SConfig = S2SConfig()
    http: HttpConfig = HttpConfig()
    components: tuple[ComponentConfig, ...] = ()
    cluster: ClusterConfig | None = None
    """None: a standalone server needing no external service."""
    require_tls: bool = True
    scram_iterations: int = MIN_SCRAM_ITERATIONS
    server_secret_file: Path | None = None
    """The file holding the server's secret; None means `data_dir/secret`."""

    def admins_of(self, domain: str) -> frozenset[str]:
        """Who administers `domain`: the server-wide admins and the host's own."""
        host = self.host(domain)
        return frozenset(self.admins + (host.admins if host is not None else ()))

    def host(self, domain: str) -> HostConfig | None:
        """The virtual host serving exactly `domain`, if any."""
        for host in self.hosts:
            if host.domain == domain:
                return host
        return None
