"""Reading the TOML configuration into `ServerConfig`, refusing bad values with their key path.

Shape of the file (`heron.example.toml` documents every key)::

    data_dir = "data"              # relative paths are relative to the config file's folder
    require_tls = true
    scram_iterations = 4096
    server_secret_file = "secret"  # optional; default data_dir/secret

    [[listeners]]                  # optional; default c2s 127.0.0.1:5222 + c2s_tls :5223
    kind = "c2s"                   # "c2s" (STARTTLS) or "c2s_tls" (Direct TLS, XEP-0368)
    host = "0.0.0.0"
    port = 5222

    [[listeners]]                  # external components (XEP-0114); added on 127.0.0.1:5347
    kind = "component"             # when components are configured and no such listener is

    [components."irc.example.org"] # an external component for this domain
    secret = "a long shared secret"
    replace = false                # true: a new connection replaces the old (else refused)

    [limits]                       # LimitsConfig's fields
    [storage]                      # engine = "sqlite", path = "heron.db" (default data_dir/…)
                                   # or engine = "postgresql", url = "postgresql://u@h:5432/db",
                                   # password_file, pool_size = 10
    [logging]                      # level = "INFO"

    admins = ["boss@example.org"]  # administrators of every host (ad-hoc commands)

    [hosts."example.org"]          # at least one host; the key is the domain
    admins = ["ops@example.org"]   # administrators of this host only
    cert = "certs/example.org.crt" # optional, together with `key`; else self-signed
    key = "certs/example.org.key"
    modules = ["disco", "ping"]    # either a list: exactly these modules, default options

    [hosts."example.org".modules]  # or a table: the default modules, adjusted per entry
    register = { allow_registration = true }  # a table: enabled, with these options
    version = false                # false: disabled; true: enabled with default options

Module options stay raw here (`HostConfig.module_options`); each module turns its table into
its own frozen dataclass with `build_options`, so an error names the full key path, such as
`hosts."example.org".modules.register.allow_registration: expected a boolean`.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from heron.config import model
from heron.config.model import (
    COMPONENT_PORT,
    DEFAULT_LISTENERS,
    DEFAULT_MODULES,
    LISTENER_KINDS,
    LOG_FORMATS,
    LOG_LEVELS,
    MIN_SCRAM_ITERATIONS,
    STORAGE_ENGINES,
    ConfigError,
)
from heron.config.names import admin_jids, check_domain

T = TypeVar("T")

EMBEDDED_DEFAULT: Final[Mapping[str, object]] = types.MappingProxyType(
    {
        "data_dir": "data",
        "hosts": {"localhost": {}},
        "listeners": [
            {"kind": "c2s", "host": "127.0.0.1", "port": 5222},
            {"kind": "c2s_tls", "host": "127.0.0.1", "port": 5223},
            {"kind": "http", "host": "127.0.0.1", "port": 5280},
            {"kind": "https", "host": "127.0.0.1", "port": 5443},
        ],
    }
)

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_MODULE_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")
_TOP_LEVEL: Final = frozenset(
    {
        "admins",
        "data_dir",
        "hosts",
        "listeners",
        "limits",
        "storage",
        "logging",
        "s2s",
        "http",
        "components",
        "cluster",
        "require_tls",
        "scram_iterations",
        "server_secret_file",
    }
)


# --- public entry points ----------------------------------------------------------------------


def load_config(
    path: Path | None, *, known_modules: Collection[str] | None = None
) -> model.ServerConfig:
    """Read and check the TOML file at `path`; None gives the embedded default (`localhost`)."""
    if path is None:
        return config_from_dict(EMBEDDED_DEFAULT, "embedded default", known_modules=known_modules)
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 ({exc.reason})") from exc
    return config_from_dict(
        data, str(path), base_dir=path.resolve().parent, known_modules=known_modules
    )


def config_from_dict(
    data: Mapping[str, object],
    source: str,
    *,
    base_dir: Path | None = None,
    known_modules: Collection[str] | None = None,
) -> model.ServerConfig:
    """Build and check a `ServerConfig` from parsed TOML; errors start with `source`.

    Relative paths are joined to `base_dir` when given (the loader passes the file's folder).
    With `known_modules`, a host naming any other module is refused.
    """
    try:
        return _server(_Table(data, ""), base_dir, known_modules)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _check_bounds(f: dataclasses.Field[Any], value: object, path: str) -> None:
    """The bounds of one given value that do not depend on other fields."""
    meta = f.metadata
    check = meta.get("check")
    if check is not None:
        for item in value if isinstance(value, tuple) else (value,):
            reason = check(item)
            if reason is not None:
                raise ConfigError(f"{path}: {item!r} {reason}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}: one of {', '.join(sorted(map(str, choices)))}")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    low, high, above = meta.get("min"), meta.get("max"), meta.get("above")
    low, high = (None if isinstance(b, str) else b for b in (low, high))
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{path}: must be a finite number")
    if low is not None and high is not None and not low <= value <= high:
        raise ConfigError(f"{path}: must be between {low} and {high}")
    if low is not None and value < low:
        raise ConfigError(f"{path}: must be ≥ {low}")
    if high is not None and value > high:
        raise ConfigError(f"{path}: must be ≤ {high}")
    if above is not None and not value > above:
        raise ConfigError(f"{path}: must be > {above}")


def _check_relations(options: object, fields: list[dataclasses.Field[Any]], table: _Table) -> None:
    """The bounds that name another field, checked on the built options (defaults too)."""
    for f in fields:
        value = getattr(options, f.name)
        low, high, needs = (f.metadata.get(k) for k in ("min", "max", "needs"))
        if isinstance(low, str) and value < getattr(options, low):
            raise ConfigError(f"{table.path(f.name)}: must be ≥ {low}")
        if isinstance(high, str) and value > getattr(options, high):
            raise ConfigError(f"{table.path(f.name)}: must be ≤ {high}")
        if needs is not None and value and not getattr(options, needs):
            raise ConfigError(f"{table.path(f.name)}: needs {needs} = true")


def build_options(cls: type[T], raw: Mapping[str, object], key_path: str) -> T:
    """Fill the frozen dataclass `cls` from `raw`, checking each value's type and refusing
    unknown keys. Field types may be bool, int, float, str, Path, tuple[str, ...], or one of
    them `| None`; bounds declared with `option()` are checked on given values, those naming
    another field on the result. Errors are `ConfigError`s naming `key_path.<field>`.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"build_options needs a dataclass, not {cls!r}")
    hints = typing.get_type_hints(cls)
    table = _Table(raw, key_path)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    table.finish([f.name for f in fields])
    values: dict[str, object] = {}
    for f in fields:
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name in table.data:
            values[f.name] = table.typed(f.name, hints[f.name])
            _check_bounds(f, values[f.name], table.path(f.name))
        elif required:
            raise ConfigError(f"{table.path(f.name)}: required")
    options = cls(**values)
    _check_relations(options, fields, table)
    return options


# --- a table being read -----------------------------------------------------------------------


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else '"' + name.replace('"', '\\"') + '"'


class _Table:
    """A TOML table at a key path; remembers which keys were read to refuse the others."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path or '(top level)'}: expected a table")
        self.data: Mapping[str, object] = data
        self.prefix = path
        self.seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.prefix}.{_key(key)}" if self.prefix else _key(key)

    def finish(self, known: Collection[str] | None = None) -> None:
        """Refuse any key that was not read (or is not in `known`)."""
        allowed = self.seen if known is None else known
        for key in self.data:
            if key not in allowed:
                names = ", ".join(sorted(allowed)) or "none"
                raise ConfigError(f"{self.path(key)}: unknown key (known: {names})")

    def raw(self, key: str) -> object:
        self.seen.add(key)
        return self.data.get(key)

    def table(self, key: str) -> _Table:
        value = self.raw(key)
        return _Table({} if value is None else value, self.path(key))

    def get_str(self, key: str, default: str) -> str:
        value = self.raw(key)
        return default if value is None else _as_str(value, self.path(key))

    def get_int(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.raw(key)
        if value is None:
            return default
        number = _as_int(value, self.path(key))
        if number < minimum:
            raise ConfigError(f"{self.path(key)}: must be ≥ {minimum}")
        if maximum is not None and number > maximum:
            raise ConfigError(f"{self.path(key)}: must be ≤ {maximum}")
        return number

    def positive_float(self, key: str, default: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        number = _as_float(value, self.path(key))
        if not number > 0 or number == float("inf"):
            raise ConfigError(f"{self.path(key)}: must be a finite number > 0")
        return number

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        return default if value is None else _as_bool(value, self.path(key))

    def optional_path(self, key: str, base_dir: Path | None) -> Path | None:
        value = self.raw(key)
        return None if value is None else _as_path(value, self.path(key), base_dir)

    def typed(self, key: str, hint: object) -> object:
        """The value at `key` checked against a build_options field type."""
        value = self.raw(key)
        path = self.path(key)
        args = typing.get_args(hint)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        if union and len(args) == 2 and type(None) in args:
            hint = args[0] if args[1] is type(None) else args[1]
        if hint is bool:
            return _as_bool(value, path)
        if hint is int:
            return _as_int(value, path)
        if hint is float:
            return _as_float(value, path)
        if hint is str:
            return _as_str(value, path)
        if hint is Path:
            return _as_path(value, path, None)
        if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, ...):
            return _as_str_tuple(value, path)
        raise TypeError(f"build_options cannot read {path} of type {hint!r}")


# --- scalar checks ----------------------------------------------------------------------------


def _as_bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: expected a boolean")
    return value


def _as_int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}: expected an integer")
    return value


def _as_float(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: expected a number")
    return float(value)


def _as_str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string")
    return value


def _as_str_tuple(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: expected an array of strings")
    return tuple(value)


def _as_path(value: object, path: str, base_dir: Path | None) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: expected a path (a non-empty string)")
    result = Path(value).expanduser()
    return base_dir / result if base_dir is not None and not result.is_absolute() else result


# --- sections ---------------------------------------------------------------------------------


def _server(
    top: _Table, base_dir: Path | None, known_modules: Collection[str] | None
) -> model.ServerConfig:
    for key in top.data:
        if key not in _TOP_LEVEL:
            raise ConfigError(
                f"{top.path(key)}: unknown key (known: {', '.join(sorted(_TOP_LEVEL))})"
            )
    data_dir = top.optional_path("data_dir", base_dir) or _as_path("data", "data_dir", base_dir)
    iterations = top.get_int("scram_iterations", MIN_SCRAM_ITERATIONS, MIN_SCRAM_ITERATIONS)
    hosts = _hosts(top, base_dir, known_modules)
    components = _components(top.table("components"), {h.domain for h in hosts})
    listeners = _listeners(top)
    if components and not any(spec.kind == "component" for spec in listeners):
        listeners = (*listeners, model.ListenerConfig("component", "127.0.0.1", COMPONENT_PORT))
    storage = _storage(top.table("storage"), base_dir)
    config = model.ServerConfig(
        admins=admin_jids(top.raw("admins"), "admins"),
        data_dir=data_dir,
        hosts=hosts,
        listeners=listeners,
        limits=_limits(top.table("limits")),
        storage=storage,
        cluster=_cluster(top.raw("cluster"), storage),
        logging=_logging(top.table("logging")),
        s2s=_s2s(top.table("s2s"), base_dir),
        http=_http(top.table("http"), base_dir),
        components=components,
        require_tls=top.get_bool("require_tls", True),
        scram_iterations=iterations,
        server_secret_file=top.optional_path("server_secret_file", base_dir),
    )
    top.finish()
    return config


def _listeners(top: _Table) -> tuple[model.ListenerConfig, ...]:
    raw = top.raw("listeners")
    if raw is None:
        return DEFAULT_LISTENERS
    if not isinstance(raw, list | tuple):
        raise ConfigError("listeners: expected an array of tables ([[listeners]])")
    result: list[model.ListenerConfig] = []
    for index, item in enumerate(raw):
        table = _Table(item, f"listeners[{index}]")
        kind = table.get_str("kind", "")
        if kind not in LISTENER_KINDS:
            known = ", ".join(sorted(LISTENER_KINDS))
            raise ConfigError(f"{table.path('kind')}: unknown kind {kind!r} (known: {known})")
        host = table.get_str("host", "127.0.0.1")
        if not host:
            raise ConfigError(f"{table.path('host')}: must not be empty")
        raw_port = table.raw("port")
        if raw_port is None and kind == "component":
            raw_port = COMPONENT_PORT
        port = _as_int(raw_port, table.path("port"))
        if not 0 <= port <= 65535:
            raise ConfigError(f"{table.path('port')}: must be between 0 and 65535")
        table.finish()
        result.append(model.ListenerConfig(kind, host, port))
    return tuple(result)


def _limits(table: _Table) -> model.LimitsConfig:
    limits = build_options(model.LimitsConfig, table.data, table.prefix)
    if limits.pre_auth_max_stanza_bytes > limits.max_stanza_bytes:
        raise ConfigError(
            f"{table.path('pre_auth_max_stanza_bytes')}: must be ≤ limits.max_stanza_bytes"
        )
    return limits


def _cluster(raw: object, storage: model.StorageConfig) -> model.ClusterConfig | None:
    if raw is None:
        return None
    cluster = build_options(model.ClusterConfig, raw if isinstance(raw, Mapping) else {}, "cluster")
    if not _BARE_KEY.fullmatch(cluster.node):
        raise ConfigError("cluster.node: letters, digits, '-' and '_' only")
    if not cluster.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("cluster.redis_url: expected redis://host:port/db")
    if cluster.nats_url and not cluster.nats_url.startswith(("nats://", "tls://")):
        raise ConfigError("cluster.nats_url: expected nats://host:port")
    if not 1 <= cluster.lease_s <= 60:
        raise ConfigError("cluster.lease_s: must be between 1 and 60")
    if storage.engine != "postgresql":
        raise ConfigError(
            'cluster: needs storage.engine = "postgresql" (one database for all nodes)'
        )
    return cluster


def _storage(table: _Table, base_dir: Path | None) -> model.StorageConfig:
    engine = table.get_str("engine", "sqlite")
    if engine not in STORAGE_ENGINES:
        known = ", ".join(sorted(STORAGE_ENGINES))
        raise ConfigError(f"{table.path('engine')}: unknown engine {engine!r} (known: {known})")
    storage = model.StorageConfig(
        engine=engine,
        path=table.optional_path("path", base_dir),
        url=table.get_str("url", ""),
        password_file=table.optional_path("password_file", base_dir),
        pool_size=table.get_int("pool_size", 10, 1, 1000),
    )
    table.finish()
    if engine == "postgresql":
        if not storage.url:
            raise ConfigError(f'{table.path("url")}: required with engine = "postgresql"')
        scheme = storage.url.split("://", 1)[0] if "://" in storage.url else ""
        if scheme not in ("postgresql", "postgres"):
            raise ConfigError(f"{table.path('url')}: expected postgresql://user@host:port/database")
    elif storage.url or storage.password_file is not None:
        raise ConfigError(f'{table.path("url")}: only for engine = "postgresql"')
    return storage


def _domains(table: _Table, key: str) -> tuple[str, ...]:
    raw = table.raw(key)
    if raw is None:
        return ()
    domains = _as_str_tuple(raw, table.path(key))
    for domain in domains:
        check_domain(domain, table.path(key))
    return domains


def _address(table: _Table, key: str) -> str | None:
    raw = table.raw(key)
    if raw is None:
        return None
    address = _as_str(raw, table.path(key))
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f'{table.path(key)}: expected "host:port"')
    return address


def _s2s(table: _Table, base_dir: Path | None) -> model.S2SConfig:
    d = model.S2SConfig()
    peers: dict[str, str] = {}
    raw_peers = table.table("peers")
    for domain in raw_peers.data:
        address = raw_peers.get_str(domain, "")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f'{raw_peers.path(domain)}: expected "host:port"')
        check_domain(domain, raw_peers.path(domain))
        peers[domain] = address
    raw_peers.finish()
    config = model.S2SConfig(
        enabled=table.get_bool("enabled", d.enabled),
        require_valid_certificates=table.get_bool(
            "require_valid_certificates", d.require_valid_certificates
        ),
        ca_file=table.optional_path("ca_file", base_dir),
        peers=types.MappingProxyType(peers),
        deny=_domains(table, "deny"),
        resolver=_address(table, "resolver"),
        connect_timeout_s=table.positive_float("connect_timeout_s", d.connect_timeout_s),
        idle_timeout_s=table.positive_float("idle_timeout_s", d.idle_timeout_s),
        max_queue=table.get_int("max_queue", d.max_queue, 1),
    )
    table.finish()
    return config


def _http_path(table: _Table, key: str, default: str) -> str:
    value = table.get_str(key, default)
    if not value.startswith("/") or any(c in value for c in "?#\\ "):
        raise ConfigError(f"{table.path(key)}: a URL path starting with /")
    return value.rstrip("/") or "/"


def _ws_uri(table: _Table, key: str) -> str:
    value = table.get_str(key, "")
    if value and not value.startswith(("ws://", "wss://")):
        raise ConfigError(f"{table.path(key)}: a ws:// or wss:// URL")
    return value


def _http(table: _Table, base_dir: Path | None) -> model.HttpConfig:
    d = model.HttpConfig()
    proxies = table.raw("trusted_proxies")
    origins = table.raw("cors_origins")
    public_url = table.get_str("public_url", "").rstrip("/")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"{table.path('public_url')}: an http:// or https:// URL")
    config = model.HttpConfig(
        websocket_path=_http_path(table, "websocket_path", d.websocket_path),
        bosh_path=_http_path(table, "bosh_path", d.bosh_path),
        chat_path=_http_path(table, "chat_path", d.chat_path),
        public_url=public_url,
        trusted_proxies=_as_str_tuple(proxies, table.path("trusted_proxies")) if proxies else (),
        cors_origins=(
            _as_str_tuple(origins, table.path("cors_origins"))
            if origins is not None
            else d.cors_origins
        ),
        bosh_max_wait_s=table.get_int("bosh_max_wait_s", d.bosh_max_wait_s, 1, 3600),
        bosh_max_inactivity_s=table.get_int(
            "bosh_max_inactivity_s", d.bosh_max_inactivity_s, 5, 3600
        ),
        web_dir=table.optional_path("web_dir", base_dir),
        websocket_see_other_uri=_ws_uri(table, "websocket_see_other_uri"),
        metrics_allow=(
            _as_str_tuple(table.raw("metrics_allow"), table.path("metrics_allow"))
            if table.raw("metrics_allow") is not None
            else d.metrics_allow
        ),
    )
    table.finish()
    return config


MIN_COMPONENT_SECRET: Final = 16


def _components(table: _Table, hosts: set[str]) -> tuple[model.ComponentConfig, ...]:
    """`[components."gw.example.org"]`: the domains external components may serve."""
    result: list[model.ComponentConfig] = []
    for domain in table.data:
        entry = table.table(domain)
        check_domain(domain, table.path(domain))
        if domain in hosts:
            raise ConfigError(f"{table.path(domain)}: already a host of this server")
        secret = entry.get_str("secret", "")
        if len(secret) < MIN_COMPONENT_SECRET:
            raise ConfigError(
                f"{entry.path('secret')}: at least {MIN_COMPONENT_SECRET} characters are needed"
            )
        replace = entry.get_bool("replace", False)
        entry.finish()
        result.append(model.ComponentConfig(domain, secret, replace))
    table.finish()
    return tuple(result)


def _logging(table: _Table) -> model.LoggingConfig:
    level, form = table.get_str("level", "INFO").upper(), table.get_str("format", "text")
    for key, value, known in (("level", level, LOG_LEVELS), ("format", form, LOG_FORMATS)):
        if value not in known:
            raise ConfigError(f"{table.path(key)}: must be one of {', '.join(known)}")
    table.finish()
    return model.LoggingConfig(level, form)


def _hosts(
    top: _Table, base_dir: Path | None, known_modules: Collection[str] | None
) -> tuple[model.HostConfig, ...]:
    hosts = top.table("hosts")
    if not hosts.data:
        raise ConfigError('hosts: at least one host is needed ([hosts."example.org"])')
    result: list[model.HostConfig] = []
    for domain in hosts.data:
        if not isinstance(domain, str):
            raise ConfigError(f"hosts: {domain!r} is not a domain name")
        path = hosts.path(domain)
        check_domain(domain, path)
        result.append(_host(hosts.table(domain), domain, base_dir, known_modules))
    hosts.finish()
    return tuple(result)


def _host(
    table: _Table, domain: str, base_dir: Path | None, known_modules: Collection[str] | None
) -> model.HostConfig:
    cert = table.optional_path("cert", base_dir)
    key = table.optional_path("key", base_dir)
    if cert is not None and key is None:
        raise ConfigError(f"{table.path('cert')}: a certificate needs its `key` too")
    if key is not None and cert is None:
        raise ConfigError(f"{table.path('key')}: a key needs its `cert` too")
    modules, options = _modules(table, known_modules)
    admins = admin_jids(table.raw("admins"), table.path("admins"))
    table.finish()
    return model.HostConfig(domain, cert, key, modules, options, admins)


def _modules(
    host: _Table, known_modules: Collection[str] | None
) -> tuple[tuple[str, ...], Mapping[str, Mapping[str, object]]]:
    raw = host.raw("modules")
    path = host.path("modules")
    names: list[str]
    options: dict[str, Mapping[str, object]] = {}
    if raw is None:
        names = list(DEFAULT_MODULES)
    elif isinstance(raw, list | tuple):
        names = list(_as_str_tuple(raw, path))
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise ConfigError(f"{path}: {name!r} is listed twice")
    elif isinstance(raw, Mapping):
        names = list(DEFAULT_MODULES)
        for name, entry in raw.items():
            entry_path = f"{path}.{_key(str(name))}"
            if entry is False:
                if name in names:
                    names.remove(name)
                continue
            if entry is True:
                entry = {}
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{entry_path}: expected true, false or a table of options")
            if name not in names:
                names.append(name)
            options[name] = types.MappingProxyType(dict(entry))
    else:
        raise ConfigError(f"{path}: expected an array of module names or a table")
    for name in names:
        if not _MODULE_NAME.fullmatch(name):
            raise ConfigError(f"{path}.{_key(name)}: not a valid module name")
        if known_modules is not None and name not in known_modules:
            known = ", ".join(sorted(known_modules))
            raise ConfigError(f"{path}.{_key(name)}: unknown module (known: {known})")
    return tuple(names), types.MappingProxyType(options)
