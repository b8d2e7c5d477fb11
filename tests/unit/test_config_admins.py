"""Administrators in the configuration: server-wide and per host."""

from __future__ import annotations

import pytest

from heron.config import ConfigError, config_from_dict
from heron.core.admins import Admins
from heron.jid import JID


def test_server_wide_and_per_host_admins() -> None:
    config = config_from_dict(
        {
            "admins": ["Boss@Example.org", "boss@example.org"],
            "hosts": {"example.org": {"admins": ["ops@example.org"]}, "example.net": {}},
        },
        "test.toml",
    )
    assert config.admins == ("boss@example.org",)  # normalised, once
    assert config.admins_of("example.org") == {"boss@example.org", "ops@example.org"}
    assert config.admins_of("example.net") == {"boss@example.org"}
    admins = Admins(config)
    assert admins.is_admin(JID.parse("ops@example.org/phone"), "example.org")
    assert not admins.is_admin(JID.parse("ops@example.org"), "example.net")
    assert admins.is_admin(JID.parse("boss@example.org"), "example.net")
    assert not admins.is_admin(JID.parse("example.org"), "example.org")
    assert not admins.is_admin(JID.parse("eve@example.org"), "example.org")


def test_admins_follow_a_new_configuration() -> None:
    admins = Admins(config_from_dict({"hosts": {"example.org": {}}}, "a"))
    assert not admins.is_admin(JID.parse("new@example.org"), "example.org")
    admins.update(
        config_from_dict({"hosts": {"example.org": {"admins": ["new@example.org"]}}}, "b")
    )
    assert admins.is_admin(JID.parse("new@example.org"), "example.org")


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"admins": "boss@example.org"}, "admins", "expected an array"),
        ({"admins": ["example.org"]}, "admins", "not an account address"),
        ({"admins": ["a@example.org/res"]}, "admins", "not an account address"),
        ({"admins": ["@@"]}, "admins", "not a valid JID"),
        (
            {"hosts": {"example.org": {"admins": [1]}}},
            'hosts."example.org".admins',
            "expected an array",
        ),
    ],
)
def test_bad_admins_are_refused_with_their_key(
    data: dict[str, object], key: str, reason: str
) -> None:
    data = {"hosts": {"example.org": {}}, **data}
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "test.toml")
    assert f"test.toml: {key}: " in str(info.value)
    assert reason in str(info.value)
