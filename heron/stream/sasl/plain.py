"""The PLAIN mechanism (RFC 4616), checked against stored SCRAM keys.

Offer PLAIN only on a TLS-protected stream: the password crosses the wire as is.
"""

from __future__ import annotations

import hmac
from typing import Final

from heron.credentials import ScramKeys, derive_keys

from .errors import SaslFailure

__all__ = ["parse_plain", "verify_plain"]

# RFC 4616 asks servers to accept at least 255 octets per field; allow some slack.
MAX_FIELD_BYTES: Final = 1024


def parse_plain(data: bytes) -> tuple[str, str, str]:
    """Split a PLAIN message into ``(authzid, authcid, password)``; authzid may be ``""``.

    Raise :class:`SaslFailure` ``malformed-request`` unless it is three NUL-separated UTF-8
    fields with a non-empty authcid and password.
    """
    fields = data.split(b"\x00")
    if len(fields) != 3:
        raise SaslFailure("malformed-request", "PLAIN needs exactly three fields")
    if not fields[1] or not fields[2]:
        raise SaslFailure("malformed-request", "empty authcid or password")
    if any(len(field) > MAX_FIELD_BYTES for field in fields):
        raise SaslFailure("malformed-request", "PLAIN field too long")
    try:
        authzid, authcid, password = (field.decode("utf-8") for field in fields)
    except UnicodeDecodeError:
        raise SaslFailure("malformed-request", "PLAIN fields must be UTF-8") from None
    return authzid, authcid, password


def verify_plain(password: str, keys: ScramKeys) -> bool:
    """Whether ``password`` matches ``keys`` (pass ``fake_keys(...)`` for unknown users)."""
    try:
        candidate = derive_keys(
            password, keys.hash_name, salt=keys.salt, iterations=keys.iterations
        )
    except ValueError:
        return False
    return hmac.compare_digest(candidate.stored_key, keys.stored_key)
