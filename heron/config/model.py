"""The configuration as frozen values. `heron.config.loader` builds them from TOML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

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
)
LISTENER_KINDS: Final[frozenset[str]] = frozenset({"c2s", "c2s_tls"})
STORAGE_ENGINES: Final[frozenset[str]] = frozenset({"sqlite"})
LOG_LEVELS: Final[tuple[str, ...]] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SCRAM_ITERATIONS: Final = 4096


def _no_options() -> Mapping[str, Mapping[str, object]]:
    return MappingProxyType({})


class ConfigError(Exception):
    """A refused configuration; the message names the key path and the reason."""


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    kind: str
    """`c2s` (plain TCP, then STARTTLS) or `c2s_tls` (Direct TLS, XEP-0368)."""
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_stanza_bytes: int = 262144
    pre_auth_max_stanza_bytes: int = 16384
    max_depth: int = 32
    max_attrs: int = 64
    max_attr_bytes: int = 8192
    auth_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    out_queue_bytes: int = 1048576


@dataclass(frozen=True, slots=True)
class HostConfig:
    domain: str
    cert: Path | None = None
    key: Path | None = None
    modules: tuple[str, ...] = DEFAULT_MODULES
    module_options: Mapping[str, Mapping[str, object]] = field(default_factory=_no_options)
    """Raw option tables by module name; each module checks its own with `build_options`."""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    engine: str = "sqlite"
    path: Path | None = None
    """The database file; None means `data_dir/heron.db`."""


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"


DEFAULT_LISTENERS: Final[tuple[ListenerConfig, ...]] = (
    ListenerConfig("c2s", "127.0.0.1", 5222),
    ListenerConfig("c2s_tls", "127.0.0.1", 5223),
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The whole server. `ServerConfig()` is the embedded default: `localhost` on loopback."""

    data_dir: Path = Path("data")
    hosts: tuple[HostConfig, ...] = (HostConfig("localhost"),)
    listeners: tuple[ListenerConfig, ...] = DEFAULT_LISTENERS
    limits: LimitsConfig = LimitsConfig()
    storage: StorageConfig = StorageConfig()
    logging: LoggingConfig = LoggingConfig()
    require_tls: bool = True
    scram_iterations: int = MIN_SCRAM_ITERATIONS
    server_secret_file: Path | None = None
    """The file holding the server's secret; None means `data_dir/secret`."""

    def host(self, domain: str) -> HostConfig | None:
        """The virtual host serving exactly `domain`, if any."""
        for host in self.hosts:
            if host.domain == domain:
                return host
        return None
