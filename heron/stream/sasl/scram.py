"""Server side of the SCRAM family (RFC 5802, RFC 7677), sans-IO.

The caller (the stream engine) base64-decodes each client message and drives the exchange::

    server = ScramServer("SHA-256", plus=False, plus_offered=True, channel_bindings=cb)
    username = server.start(client_first)        # SaslFailure on a bad message
    keys = lookup(username) or fake_keys(username, "SHA-256", secret)
    challenge = server.server_first(keys)        # send as <challenge/>
    outcome = server.finish(client_final)        # SaslFailure("not-authorized") on a bad proof
    # send outcome as <success/> additional data; server.username / server.authzid are set.

``channel_bindings`` maps a type ("tls-exporter", "tls-server-end-point", "tls-unique") to the
data of this connection. Unknown users must get :func:`heron.credentials.fake_keys` so the
exchange cannot tell them apart from known ones; they fail at the proof step like a bad password.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Final

from heron.credentials import HASHES, ScramKeys, hashlib_name

from .errors import SaslFailure

__all__ = ["ScramServer", "mechanism_names", "parse_mechanism"]

MAX_MESSAGE_BYTES: Final = 8192
_SERVER_NONCE_BYTES: Final = 24
# RFC 5802 §7: printable = %x21-2B / %x2D-7E (printable ASCII except ",").
_NONCE_RE: Final = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_CB_NAME_RE: Final = re.compile(r"[A-Za-z0-9.-]+")
# saslname: no "," (already split away), and "=" only as "=2C" or "=3D".
_SASLNAME_RE: Final = re.compile(r"(?:[^=,]|=2C|=3D)+")
_SASLNAME_ESCAPE_RE: Final = re.compile(r"=(2C|3D)")
_PREFERENCE: Final = ("SHA-512", "SHA-256", "SHA-1")


def mechanism_names(plus_types_available: bool) -> list[str]:
    """SCRAM mechanisms in preference order, -PLUS first when channel binding is available.

    PLAIN is listed last, but the caller must offer it only on a TLS-protected stream.
    """
    names = [f"SCRAM-{h}-PLUS" for h in _PREFERENCE] if plus_types_available else []
    names += [f"SCRAM-{h}" for h in _PREFERENCE]
    names.append("PLAIN")
    return names


def parse_mechanism(name: str) -> tuple[str, bool] | None:
    """``"SCRAM-SHA-256-PLUS"`` gives ``("SHA-256", True)``; None if not a SCRAM we support."""
    if not name.startswith("SCRAM-"):
        return None
    rest = name[len("SCRAM-") :]
    plus = rest.endswith("-PLUS")
    if plus:
        rest = rest[: -len("-PLUS")]
    return (rest, plus) if rest in HASHES else None


class _State(enum.Enum):
    START = enum.auto()
    STARTED = enum.auto()
    CHALLENGED = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


def _malformed(text: str) -> SaslFailure:
    return SaslFailure("malformed-request", text)


def _decode_text(data: bytes) -> str:
    if len(data) > MAX_MESSAGE_BYTES:
        raise _malformed("SCRAM message too long")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("SCRAM message is not UTF-8") from None
    if "\x00" in text:
        raise _malformed("NUL in SCRAM message")
    return text


def _decode_saslname(value: str) -> str:
    if not _SASLNAME_RE.fullmatch(value):
        raise _malformed("invalid saslname")
    return _SASLNAME_ESCAPE_RE.sub(lambda m: "," if m.group(1) == "2C" else "=", value)


def _b64decode(value: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _malformed("invalid base64 in SCRAM message") from None


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _attributes(items: list[str]) -> list[tuple[str, str]]:
    """Split ``a=value`` items; every attribute name is a single ASCII letter."""
    pairs = []
    for item in items:
        if len(item) < 2 or item[1] != "=" or not ("a" <= item[0].lower() <= "z"):
            raise _malformed("invalid SCRAM attribute")
        pairs.append((item[0], item[2:]))
    return pairs


class ScramServer:
    """One SCRAM exchange on the server side. Not reusable."""

    def __init__(
        self,
        hash_name: str,
        *,
        plus: bool,
        plus_offered: bool,
        channel_bindings: Mapping[str, bytes],
        nonce: str | None = None,
    ) -> None:
        self.hash_name: Final = hash_name
        self._hashlib: Final = hashlib_name(hash_name)
        self.plus: Final = plus
        self.mechanism_name: Final = f"SCRAM-{hash_name}" + ("-PLUS" if plus else "")
        self._plus_offered = plus_offered or plus
        self._channel_bindings = dict(channel_bindings)
        if nonce is None:
            nonce = secrets.token_urlsafe(_SERVER_NONCE_BYTES)
        elif not _NONCE_RE.fullmatch(nonce):
            raise ValueError("server nonce must be printable ASCII without ','")
        self._server_nonce = nonce
        self._state = _State.START
        self.username: str | None = None
        self.authzid: str | None = None
        self.channel_binding: str | None = None  # the type used, once started
        self._gs2_header = ""
        self._client_first_bare = ""
        self._nonce = ""
        self._server_first = ""
        self._keys: ScramKeys | None = None

    def _expect(self, state: _State) -> None:
        if self._state is not state:
            raise RuntimeError(f"SCRAM step called in state {self._state.name}")

    def start(self, client_first: bytes) -> str:
        """Take the client-first message; return the username (saslname-decoded, not prepared).

        Also sets :attr:`authzid` when the client asked for one.
        """
        self._expect(_State.START)
        self._state = _State.FAILED
        text = _decode_text(client_first)
        self._parse_gs2(text)
        items = text[len(self._gs2_header) :].split(",")
        attrs = _attributes(items)
        if attrs and attrs[0][0] == "m":
            raise _malformed("SCRAM mandatory extensions are not supported")
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
            raise _malformed("client-first-message needs n= then r=")
        username = _decode_saslname(attrs[0][1])
        client_nonce = attrs[1][1]
        if not _NONCE_RE.fullmatch(client_nonce):
            raise _malformed("invalid client nonce")
        # Further attributes are optional extensions (RFC 5802 §5.1); they are ignored.
        self._client_first_bare = text[len(self._gs2_header) :]
        self._nonce = client_nonce + self._server_nonce
        self.username = username
        self._state = _State.STARTED
        return username

    def _parse_gs2(self, text: str) -> None:
        flag, sep, rest = text.partition(",")
        if not sep:
            raise _malformed("missing GS2 header")
        if flag.startswith("p="):
            cb_type = flag[2:]
            if not _CB_NAME_RE.fullmatch(cb_type):
                raise _malformed("invalid channel-binding type name")
            if not self.plus:
                raise _malformed("channel binding requested on a non-PLUS mechanism")
            if cb_type not in self._channel_bindings:
                raise SaslFailure("not-authorized", "channel-binding type not supported")
            self.channel_binding = cb_type
        elif flag in ("n", "y"):
            if self.plus:
                raise _malformed("-PLUS mechanism used without channel binding")
            if flag == "y" and self._plus_offered:
                # RFC 5802 §6: the client thinks we lack channel binding: a downgrade.
                raise SaslFailure("not-authorized", "channel binding downgrade")
        else:
            raise _malformed("invalid GS2 channel-binding flag")
        authzid, sep, _ = rest.partition(",")
        if not sep:
            raise _malformed("missing GS2 header")
        if authzid:
            if not authzid.startswith("a="):
                raise _malformed("invalid GS2 authzid")
            self.authzid = _decode_saslname(authzid[2:])
        self._gs2_header = f"{flag},{authzid},"

    def server_first(self, keys: ScramKeys) -> bytes:
        """The server-first message for ``keys`` (the user's, or ``fake_keys`` if unknown)."""
        self._expect(_State.STARTED)
        if keys.hash_name != self.hash_name:
            raise ValueError(f"keys for {keys.hash_name}, exchange uses {self.hash_name}")
        self._keys = keys
        salt = _b64encode(keys.salt)
        self._server_first = f"r={self._nonce},s={salt},i={keys.iterations}"
        self._state = _State.CHALLENGED
        return self._server_first.encode("ascii")

    def finish(self, client_final: bytes) -> bytes:
        """Verify the client-final message; return server-final (``v=...``) on success."""
        self._expect(_State.CHALLENGED)
        assert self._keys is not None
        self._state = _State.FAILED
        text = _decode_text(client_final)
        items = text.split(",")
        attrs = _attributes(items)
        if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
            raise _malformed("client-final-message needs c=, r= and p=")
        cb_input = _b64decode(attrs[0][1])
        proof = _b64decode(attrs[-1][1])
        expected_cb = self._gs2_header.encode("utf-8")
        if self.channel_binding is not None:
            expected_cb += self._channel_bindings[self.channel_binding]
        if not hmac.compare_digest(cb_input, expected_cb):
            raise SaslFailure("not-authorized", "channel-binding data mismatch")
        if not hmac.compare_digest(attrs[1][1].encode("utf-8"), self._nonce.encode("ascii")):
            raise SaslFailure("not-authorized", "nonce mismatch")
        without_proof = ",".join(items[:-1])
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}"
        auth_bytes = auth_message.encode("utf-8")
        keys = self._keys
        signature = hmac.digest(keys.stored_key, auth_bytes, self._hashlib)
        if len(proof) != len(signature):
            raise SaslFailure("not-authorized", "bad client proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(
            hashlib.new(self._hashlib, client_key).digest(), keys.stored_key
        ):
            raise SaslFailure("not-authorized", "bad client proof")
        server_signature = hmac.digest(keys.server_key, auth_bytes, self._hashlib)
        self._state = _State.DONE
        return b"v=" + _b64encode(server_signature).encode("ascii")
