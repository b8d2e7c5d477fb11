"""XEP-0215 pieces without sockets: service URIs and TURN REST credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from heron.modules.extdisco import ExternalService, turn_credentials


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("stun:stun.example.org", ExternalService("stun", "stun.example.org", 3478, "udp")),
        ("stuns:stun.example.org", ExternalService("stuns", "stun.example.org", 5349, "tcp")),
        (
            "turn:192.0.2.1:3479?transport=tcp",
            ExternalService("turn", "192.0.2.1", 3479, "tcp"),
        ),
        ("turns:[2001:db8::1]:443", ExternalService("turns", "2001:db8::1", 443, "tcp")),
        ("turn:[2001:db8::1]", ExternalService("turn", "2001:db8::1", 3478, "udp")),
    ],
)
def test_service_uris(uri: str, expected: ExternalService) -> None:
    assert ExternalService.from_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.org",
        "turn:",
        "turn:host:99999",
        "turn:host:port",
        "turn:host?transport=sctp",
        "stun:host?transport=udp",
        "turn:host?user=x",
        "turn:[::1]x",
    ],
)
def test_bad_service_uris(uri: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        ExternalService.from_uri(uri)


def test_turn_rest_credentials() -> None:
    username, password = turn_credentials("s3cret", "alice@example.org", 1700000000)
    assert username == "1700000000:alice@example.org"
    expected = hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(password) == expected
    assert len(base64.b64decode(password)) == 20  # SHA-1
