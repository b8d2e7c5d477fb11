"""The configuration: the embedded default, the example file, every refusal, build_options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from heron.config import (
    DEFAULT_MODULES,
    ConfigError,
    HostConfig,
    LimitsConfig,
    ListenerConfig,
    S2SConfig,
    ServerConfig,
    StorageConfig,
    build_options,
    config_from_dict,
    load_config,
)
from heron.modules.antispam import AntispamOptions
from heron.modules.blocking.module import BlockingOptions
from heron.modules.push import PushOptions

EXAMPLE = Path(__file__).parents[2] / "heron.example.toml"


def minimal(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {"hosts": {"example.org": {}}}
    data.update(overrides)
    return data


def refused(data: dict[str, object], key: str, reason: str = "") -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "test.toml")
    message = str(info.value)
    assert message.startswith("test.toml: ")
    assert f" {key}: " in message, message
    assert reason in message
    return message


def test_embedded_default() -> None:
    config = load_config(None)
    assert config == ServerConfig()
    assert config.data_dir == Path("data")
    assert [h.domain for h in config.hosts] == ["localhost"]
    assert config.hosts[0].modules == DEFAULT_MODULES
    assert config.hosts[0].cert is None
    assert config.listeners == (
        ListenerConfig("c2s", "127.0.0.1", 5222),
        ListenerConfig("c2s_tls", "127.0.0.1", 5223),
        ListenerConfig("http", "127.0.0.1", 5280),
        ListenerConfig("https", "127.0.0.1", 5443),
    )
    assert config.limits == LimitsConfig()
    assert config.storage == StorageConfig("sqlite", None)
    assert config.logging.level == "INFO"
    assert config.require_tls
    assert config.scram_iterations == 4096
    assert config.host("localhost") is config.hosts[0]
    assert config.host("example.org") is None


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    base = EXAMPLE.parent
    assert config.data_dir == base / "data"
    assert [h.domain for h in config.hosts] == ["example.org", "localhost"]
    org = config.host("example.org")
    assert org is not None
    assert org.modules == DEFAULT_MODULES
    assert org.module_options["register"] == {
        "allow_registration": False,
        "throttle_per_ip": 3,
        "throttle_window_s": 3600.0,
        "min_password_length": 8,
        "invitation_only": False,
    }
    assert org.module_options["antispam"] == {
        "strangers": "allow",
        "max_subscription_requests": 50,
        "max_quarantined": 200,
    }
    # The example shows these modules' defaults, as their option classes declare them.
    for name, options in (
        ("antispam", AntispamOptions),
        ("blocking", BlockingOptions),
        ("push", PushOptions),
    ):
        assert build_options(options, org.module_options[name], name) == options()
    assert org.module_options["time"] == {}
    local = config.host("localhost")
    assert local == HostConfig("localhost")
    assert [listener.port for listener in config.listeners] == [5222, 5223, 5269, 5347, 5280]
    assert [c.domain for c in config.components] == ["irc.example.org"]
    assert config.s2s == S2SConfig()
    assert config.limits == LimitsConfig()
    assert config.storage.path is None


def test_file_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "heron.toml"
    path.parent.mkdir()
    path.write_text(
        'data_dir = "var"\nserver_secret_file = "/abs/secret"\n'
        '[storage]\npath = "db/heron.db"\n'
        '[hosts."example.org"]\ncert = "a.crt"\nkey = "a.key"\n'
        "modules = ['ping']\n",
        encoding="utf-8",
    )
    config = load_config(path)
    base = path.parent.resolve()
    assert config.data_dir == base / "var"
    assert config.storage.path == base / "db" / "heron.db"
    assert config.server_secret_file == Path("/abs/secret")
    assert config.hosts[0].cert == base / "a.crt"
    assert config.hosts[0].modules == ("ping",)
    assert config.listeners == ServerConfig().listeners  # none given: the loopback defaults


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("hosts = [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_config(bad)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'data_dir = "\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: invalid TOML"):
        load_config(latin)
    refusing = tmp_path / "refusing.toml"
    refusing.write_text("[hosts.localhost]\n[[listeners]]\nkind='c2s'\nport=99999\n")
    with pytest.raises(ConfigError, match=r"refusing\.toml: listeners\[0\]\.port: must be"):
        load_config(refusing)


def test_modules_table_adjusts_defaults() -> None:
    config = config_from_dict(
        minimal(
            hosts={
                "example.org": {
                    "modules": {"version": False, "muc": True, "register": {"allow": 1}}
                }
            }
        ),
        "t",
    )
    host = config.hosts[0]
    assert host.modules == (
        "disco",
        "ping",
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
    assert host.module_options == {"muc": {}, "register": {"allow": 1}}


def test_known_modules() -> None:
    data = minimal(hosts={"example.org": {"modules": ["ping", "nope"]}})
    with pytest.raises(ConfigError, match=r'hosts\."example\.org"\.modules\.nope: unknown module'):
        config_from_dict(data, "t", known_modules={"ping"})
    assert config_from_dict(data, "t").hosts[0].modules == ("ping", "nope")


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        (minimal(colour="red"), "colour", "unknown key"),
        ({"hosts": {}}, "hosts", "at least one host"),
        ({}, "hosts", "at least one host"),
        (minimal(hosts={"Example.org": {}}), 'hosts."Example.org"', "lowercase"),
        (minimal(hosts={"exa mple.org": {}}), 'hosts."exa mple.org"', "not a valid DNS name"),
        (minimal(hosts={"-a.org": {}}), 'hosts."-a.org"', "not a valid DNS name"),
        (minimal(hosts={"a..org": {}}), 'hosts."a..org"', "not a valid DNS name"),
        (minimal(hosts={"a.org.": {}}), 'hosts."a.org."', "not a valid DNS name"),
        (minimal(hosts={"10.0.0.1": {}}), 'hosts."10.0.0.1"', "IP address"),
        (minimal(hosts={"a" * 64 + ".org": {}}), f'hosts."{"a" * 64}.org"', "not a valid DNS name"),
        (minimal(hosts={"example.org": []}), 'hosts."example.org"', "expected a table"),
        (minimal(hosts={"example.org": {"cert": "a.crt"}}), 'hosts."example.org".cert', "key"),
        (minimal(hosts={"example.org": {"key": "a.key"}}), 'hosts."example.org".key', "cert"),
        (
            minimal(hosts={"example.org": {"cert": 5, "key": "k"}}),
            'hosts."example.org".cert',
            "path",
        ),
        (minimal(hosts={"example.org": {"tls": {}}}), 'hosts."example.org".tls', "unknown key"),
        (
            minimal(hosts={"example.org": {"modules": "ping"}}),
            'hosts."example.org".modules',
            "array",
        ),
        (
            minimal(hosts={"example.org": {"modules": [1]}}),
            'hosts."example.org".modules',
            "strings",
        ),
        (
            minimal(hosts={"example.org": {"modules": ["ping", "ping"]}}),
            'hosts."example.org".modules',
            "twice",
        ),
        (
            minimal(hosts={"example.org": {"modules": {"ping": 3}}}),
            'hosts."example.org".modules.ping',
            "expected true, false or a table",
        ),
        (
            minimal(hosts={"example.org": {"modules": ["Ping"]}}),
            'hosts."example.org".modules.Ping',
            "not a valid module name",
        ),
        (minimal(listeners={}), "listeners", "array of tables"),
        (
            minimal(listeners=[{"kind": "c2s_websocket", "port": 5269}]),
            "listeners[0].kind",
            "unknown kind",
        ),
        (minimal(listeners=[{"kind": "c2s"}]), "listeners[0].port", "expected an integer"),
        (
            minimal(listeners=[{"kind": "c2s", "port": 5222}, {"kind": "c2s", "port": 65536}]),
            "listeners[1].port",
            "must be between 0 and 65535",
        ),
        (minimal(listeners=[{"kind": "c2s", "port": -1}]), "listeners[0].port", "between 0"),
        (minimal(listeners=[{"kind": "c2s", "port": True}]), "listeners[0].port", "integer"),
        (minimal(listeners=[{"kind": "c2s", "port": 1, "host": ""}]), "listeners[0].host", "empty"),
        (minimal(listeners=[{"kind": "c2s", "port": 1, "tls": 1}]), "listeners[0].tls", "unknown"),
        (minimal(limits={"max_depth": 0}), "limits.max_depth", "must be ≥ 4"),
        (minimal(limits={"max_depth": 2.5}), "limits.max_depth", "expected an integer"),
        (minimal(limits={"auth_timeout_s": 0}), "limits.auth_timeout_s", "> 0"),
        (minimal(limits={"auth_timeout_s": "1"}), "limits.auth_timeout_s", "expected a number"),
        (minimal(limits={"max_stanzas": 1}), "limits.max_stanzas", "unknown key"),
        (
            minimal(limits={"pre_auth_max_stanza_bytes": 300000}),
            "limits.pre_auth_max_stanza_bytes",
            "≤ limits.max_stanza_bytes",
        ),
        (minimal(limits=3), "limits", "expected a table"),
        (minimal(storage={"engine": "mysql"}), "storage.engine", "unknown engine"),
        (minimal(storage={"path": ""}), "storage.path", "path"),
        (minimal(logging={"level": "LOUD"}), "logging.level", "must be one of"),
        (minimal(scram_iterations=4095), "scram_iterations", "must be ≥ 4096"),
        (minimal(require_tls="yes"), "require_tls", "expected a boolean"),
        (minimal(data_dir=3), "data_dir", "path"),
    ],
)
def test_refusals_name_their_key(data: dict[str, object], key: str, reason: str) -> None:
    refused(data, key, reason)


def test_valid_values_accepted() -> None:
    config = config_from_dict(
        minimal(
            hosts={"localhost": {}, "xn--bcher-kva.example": {}, "a-b.c1.org": {}},
            listeners=[{"kind": "c2s_tls", "host": "::", "port": 0}],
            limits={"auth_timeout_s": 5, "max_stanza_bytes": 65536},
            logging={"level": "debug"},
            scram_iterations=10000,
            require_tls=False,
        ),
        "t",
    )
    assert len(config.hosts) == 3
    assert config.listeners == (ListenerConfig("c2s_tls", "::", 0),)
    assert config.limits.auth_timeout_s == 5.0
    assert isinstance(config.limits.auth_timeout_s, float)
    assert config.logging.level == "DEBUG"
    assert config.scram_iterations == 10000
    assert not config.require_tls
    assert config_from_dict(minimal(listeners=[]), "t").listeners == ()


# --- build_options ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    allow: bool = False
    count: int = 3
    ratio: float = 0.5
    name: str = "x"
    items: tuple[str, ...] = ()
    where: Path | None = None


@dataclass(frozen=True, slots=True)
class NeedsName:
    name: str


PATH = 'hosts."example.org".modules.register'


def test_build_options_defaults_and_values() -> None:
    assert build_options(Options, {}, PATH) == Options()
    got = build_options(
        Options,
        {"allow": True, "count": 7, "ratio": 2, "name": "n", "items": ["a", "b"], "where": "/x"},
        PATH,
    )
    assert got == Options(True, 7, 2.0, "n", ("a", "b"), Path("/x"))
    assert isinstance(got.ratio, float)
    assert build_options(NeedsName, {"name": "n"}, PATH) == NeedsName("n")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"allow": 1}, f"{PATH}.allow: expected a boolean"),
        ({"allow": "true"}, f"{PATH}.allow: expected a boolean"),
        ({"count": True}, f"{PATH}.count: expected an integer"),
        ({"count": 1.5}, f"{PATH}.count: expected an integer"),
        ({"ratio": "1"}, f"{PATH}.ratio: expected a number"),
        ({"name": 1}, f"{PATH}.name: expected a string"),
        ({"items": "a"}, f"{PATH}.items: expected an array of strings"),
        ({"items": ["a", 1]}, f"{PATH}.items: expected an array of strings"),
        ({"where": 1}, f"{PATH}.where: expected a path"),
        ({"colour": "red"}, f"{PATH}.colour: unknown key (known: allow, count"),
        ({"bad key": 1}, f'{PATH}."bad key": unknown key'),
    ],
)
def test_build_options_refusals(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(Options, raw, PATH)
    assert str(info.value).startswith(message)


def test_build_options_required_and_misuse() -> None:
    with pytest.raises(ConfigError, match=r"register\.name: required"):
        build_options(NeedsName, {}, PATH)

    @dataclass(frozen=True)
    class Odd:
        value: dict[str, int]

    with pytest.raises(TypeError, match="cannot read"):
        build_options(Odd, {"value": {}}, PATH)
    with pytest.raises(TypeError, match="dataclass"):
        build_options(int, {}, PATH)


def test_s2s_section() -> None:
    config = config_from_dict(
        minimal(
            s2s={
                "require_valid_certificates": True,
                "deny": ["spam.example"],
                "resolver": "127.0.0.1:5353",
                "peers": {"partner.example": "10.0.0.5:5269"},
            }
        ),
        "t",
    )
    assert config.s2s.require_valid_certificates
    assert config.s2s.deny == ("spam.example",)
    assert config.s2s.peers == {"partner.example": "10.0.0.5:5269"}
    for bad, key in (
        ({"peers": {"partner.example": "no-port"}}, "s2s.peers"),
        ({"resolver": "nowhere"}, "s2s.resolver"),
        ({"deny": ["Not A Domain"]}, "s2s.deny"),
        ({"bogus": 1}, "s2s.bogus"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            config_from_dict(minimal(s2s=bad), "t")


def test_components_need_a_long_secret_and_a_domain_of_their_own() -> None:
    base: dict[str, object] = {"hosts": {"example.org": {}}}
    with pytest.raises(ConfigError, match=r"components\.\"gw\.example\.org\"\.secret"):
        config_from_dict({**base, "components": {"gw.example.org": {"secret": "short"}}}, "t")
    with pytest.raises(ConfigError, match="already a host"):
        config_from_dict({**base, "components": {"example.org": {"secret": "s" * 16}}}, "t")
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict(
            {**base, "components": {"gw.example.org": {"secret": "s" * 16, "port": 1}}}, "t"
        )


def test_a_component_listener_is_added_when_components_are_configured() -> None:
    config = config_from_dict(
        {
            "hosts": {"example.org": {}},
            "listeners": [{"kind": "c2s", "host": "127.0.0.1", "port": 5222}],
            "components": {"gw.example.org": {"secret": "s" * 16, "replace": True}},
        },
        "t",
    )
    assert config.listeners[-1] == ListenerConfig("component", "127.0.0.1", 5347)
    assert config.components[0].replace
    explicit = config_from_dict(
        {"hosts": {"example.org": {}}, "listeners": [{"kind": "component"}]}, "t"
    )
    assert explicit.listeners == (ListenerConfig("component", "127.0.0.1", 5347),)
