"""SCRAM credentials (RFC 5802 §3, RFC 7677): what Heron stores instead of passwords.

A leaf module: the standard library and precis_i18n only. Passwords are prepared with the PRECIS
``OpaqueString`` profile (RFC 8265 §4.2), the successor of SASLprep that RFC 6120 points to.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

import precis_i18n

__all__ = [
    "HASHES",
    "ScramKeys",
    "derive_all",
    "derive_keys",
    "fake_keys",
    "hashlib_name",
    "prepare_password",
]

HASHES: Final = ("SHA-1", "SHA-256", "SHA-512")
SALT_BYTES: Final = 16
_HASHLIB: Final = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}
_OPAQUE: Final[object] = precis_i18n.get_profile("OpaqueString")


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """The stored form of one password for one SCRAM hash (RFC 5802 §3)."""

    hash_name: str  # "SHA-1", "SHA-256" or "SHA-512"
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def hashlib_name(hash_name: str) -> str:
    """Map an IANA hash name used in SCRAM ("SHA-256") to its hashlib name ("sha256")."""
    try:
        return _HASHLIB[hash_name]
    except KeyError:
        raise ValueError(f"unsupported SCRAM hash {hash_name!r}") from None


def prepare_password(password: str) -> str:
    """Apply PRECIS OpaqueString to ``password``; raise ValueError if it is not allowed."""
    try:
        result = _OPAQUE.enforce(password)  # type: ignore[attr-defined]  # untyped library
    except UnicodeEncodeError as exc:
        raise ValueError(f"password not allowed: {exc.reason}") from None
    assert isinstance(result, str)
    return result


def derive_keys(
    password: str, hash_name: str, *, salt: bytes | None = None, iterations: int = 4096
) -> ScramKeys:
    """Compute the SCRAM keys of ``password``; a random 16-byte salt unless one is given."""
    name = hashlib_name(hash_name)
    if iterations < 1:
        raise ValueError("iterations must be positive")
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    prepared = prepare_password(password).encode("utf-8")
    salted = hashlib.pbkdf2_hmac(name, prepared, salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", name)
    return ScramKeys(
        hash_name=hash_name,
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.new(name, client_key).digest(),
        server_key=hmac.digest(salted, b"Server Key", name),
    )


def derive_all(password: str, iterations: int = 4096) -> list[ScramKeys]:
    """Keys for every hash in :data:`HASHES`, each with its own random salt."""
    return [derive_keys(password, h, iterations=iterations) for h in HASHES]


def fake_keys(username: str, hash_name: str, secret: bytes, iterations: int = 4096) -> ScramKeys:
    """Keys for an unknown user, so that the exchange looks like a real one.

    The salt is derived from ``secret`` and the username, so repeated attempts see the same salt
    and an attacker cannot tell unknown users from known ones. The keys are random, so no
    password ever verifies. ``iterations`` should be the count used for real users.
    """
    name = hashlib_name(hash_name)
    message = f"{hash_name}\x00{username}".encode("utf-8", "surrogatepass")
    salt = hmac.digest(secret, message, "sha256")[:SALT_BYTES]
    size = hashlib.new(name).digest_size
    return ScramKeys(
        hash_name=hash_name,
        salt=salt,
        iterations=iterations,
        stored_key=secrets.token_bytes(size),
        server_key=secrets.token_bytes(size),
    )
