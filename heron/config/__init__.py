"""The server configuration: TOML read with `tomllib` into frozen dataclasses."""

from heron.config.loader import (
    EMBEDDED_DEFAULT,
    build_options,
    config_from_dict,
    load_config,
)
from heron.config.model import (
    DEFAULT_MODULES,
    ClusterConfig,
    ComponentConfig,
    ConfigError,
    HostConfig,
    HttpConfig,
    LimitsConfig,
    ListenerConfig,
    LoggingConfig,
    S2SConfig,
    ServerConfig,
    StorageConfig,
    option,
    parses,
)
from heron.config.names import check_domain

__all__ = [
    "DEFAULT_MODULES",
    "EMBEDDED_DEFAULT",
    "ClusterConfig",
    "ComponentConfig",
    "ConfigError",
    "HostConfig",
    "HttpConfig",
    "LimitsConfig",
    "ListenerConfig",
    "LoggingConfig",
    "S2SConfig",
    "ServerConfig",
    "StorageConfig",
    "build_options",
    "check_domain",
    "config_from_dict",
    "load_config",
    "option",
    "parses",
]
