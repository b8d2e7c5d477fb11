"""The server side of a SOCKS5 handshake (RFC 1928) as XEP-0065 §6.3 uses it, sans-IO.

Bytes in, bytes to answer out. A client offers methods (only "no authentication", 0x00, is
accepted) and sends one CONNECT request whose address is a domain name: the 40 hex digits of
SHA-1(SID + initiator JID + target JID), port 0. The proxy answers success with the same
address, and the connection waits to be paired and activated. Anything else gets the
RFC 1928 reply for it and the connection ends.
"""

from __future__ import annotations

import enum
import string
from typing import Final

VERSION: Final = 5
NO_AUTH: Final = 0
NO_ACCEPTABLE_METHOD: Final = 0xFF
CONNECT: Final = 1
DOMAIN_NAME: Final = 3


class Reply(enum.IntEnum):
    """RFC 1928 §6 reply codes."""

    SUCCEEDED = 0
    GENERAL_FAILURE = 1
    NOT_ALLOWED = 2
    COMMAND_NOT_SUPPORTED = 7
    ADDRESS_TYPE_NOT_SUPPORTED = 8


class Socks5Error(Exception):
    """The handshake failed; ``answer`` is what to send before closing (may be empty)."""

    def __init__(self, reason: str, answer: bytes = b"") -> None:
        super().__init__(reason)
        self.answer = answer


def reply(code: Reply, address: bytes = b"") -> bytes:
    """A reply to the request: VER REP RSV ATYP=domain LEN ADDR PORT=0."""
    return bytes([VERSION, code, 0, DOMAIN_NAME, len(address)]) + address + b"\0\0"


class Socks5Handshake:
    """Feed bytes until ``address`` is set (the stream's SHA-1 hex digest)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._greeted = False
        self.address: str | None = None

    def feed(self, data: bytes) -> bytes:
        """Consume ``data``; returns bytes to send. Raises Socks5Error on bad input."""
        if self.address is not None:
            raise Socks5Error("data before activation")  # the adapter stops reading first
        self._buffer += data
        out = bytearray()
        if not self._greeted:
            out += self._greeting()
        if self._greeted and self.address is None:
            try:
                out += self._request()
            except Socks5Error as exc:
                exc.answer = bytes(out) + exc.answer  # the greeting's answer goes first
                raise
        return bytes(out)

    def _greeting(self) -> bytes:
        buf = self._buffer
        if len(buf) < 2:
            return b""
        if buf[0] != VERSION:
            raise Socks5Error("not SOCKS5")
        count = buf[1]
        if len(buf) < 2 + count:
            return b""
        methods = bytes(buf[2 : 2 + count])
        del buf[: 2 + count]
        if NO_AUTH not in methods:
            raise Socks5Error("no acceptable method", bytes([VERSION, NO_ACCEPTABLE_METHOD]))
        self._greeted = True
        return bytes([VERSION, NO_AUTH])

    def _request(self) -> bytes:
        buf = self._buffer
        if len(buf) < 5:
            return b""
        version, command, _reserved, address_type, length = buf[:5]
        if version != VERSION:
            raise Socks5Error("not SOCKS5", reply(Reply.GENERAL_FAILURE))
        if command != CONNECT:
            raise Socks5Error("only CONNECT", reply(Reply.COMMAND_NOT_SUPPORTED))
        if address_type != DOMAIN_NAME:
            raise Socks5Error("the address is a hash", reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED))
        if len(buf) < 5 + length + 2:
            return b""
        address = bytes(buf[5 : 5 + length])
        port = int.from_bytes(buf[5 + length : 7 + length], "big")
        leftover = bytes(buf[7 + length :])
        buf.clear()
        text = address.decode("ascii", "replace").lower()
        # XEP-0065 §5.3.2: DST.ADDR is the SHA-1 hex digest, DST.PORT is 0.
        if len(text) != 40 or not set(text) <= set(string.hexdigits) or port != 0:
            raise Socks5Error("not a XEP-0065 address", reply(Reply.NOT_ALLOWED))
        if leftover:
            raise Socks5Error("data before activation", reply(Reply.GENERAL_FAILURE))
        self.address = text
        return reply(Reply.SUCCEEDED, address)
