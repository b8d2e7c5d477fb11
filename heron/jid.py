"""XMPP addresses (RFC 7622).

A :class:`JID` is a frozen, hashable value holding *normalised* parts. Build one with
:meth:`JID.parse` or :meth:`JID.make`; both apply the PRECIS profiles of RFC 7622 and raise
:class:`InvalidJID` for anything that is not a valid address. The bare constructor
``JID(local, domain, resource)`` trusts its arguments and is meant for code that already holds
normalised parts.

- localpart: PRECIS ``UsernameCaseMapped`` (RFC 8265 §3.3), minus the characters that RFC 7622
  §3.3.1 forbids (``" & ' / : < > @``).
- domainpart (RFC 7622 §3.2): an IP literal (``[::1]``), an IPv4 address or a domain name. A
  trailing dot is dropped, case is folded, full-width characters are mapped, NFC is applied and
  each label must be LDH (``_`` tolerated) or convertible with IDNA.
- resourcepart: PRECIS ``OpaqueString`` (RFC 8265 §4.2), case preserved.

Each part must be 1..1023 octets of UTF-8 once normalised. ASCII input takes a fast path that
gives the same answer as the PRECIS profiles without calling them.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import precis_i18n

__all__ = ["JID", "InvalidJID", "normalize_domain", "normalize_localpart", "normalize_resource"]

MAX_PART_BYTES: Final = 1023
_MAX_LABEL: Final = 63

# RFC 7622 §3.3.1: allowed by IdentifierClass but forbidden in a localpart.
_LOCAL_FORBIDDEN: Final = frozenset("\"&'/:<>@")
# Printable ASCII without the forbidden ones: ASCII that UsernameCaseMapped only lowercases.
_LOCAL_ASCII_OK: Final = frozenset(chr(c) for c in range(0x21, 0x7F)) - _LOCAL_FORBIDDEN
# Printable ASCII plus space: ASCII that OpaqueString returns unchanged.
_RESOURCE_ASCII_OK: Final = frozenset(chr(c) for c in range(0x20, 0x7F))
_LABEL_ASCII_OK: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
# Full stops that IDNA (RFC 3490 §3.1) treats as label separators.
_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class InvalidJID(ValueError):
    """The text is not a valid JID (RFC 7622)."""


class _Profile:
    """Typed wrapper around an (untyped) precis_i18n profile."""

    __slots__ = ("_profile",)

    def __init__(self, name: str) -> None:
        self._profile: object = precis_i18n.get_profile(name)

    def enforce(self, value: str) -> str:
        result = self._profile.enforce(value)  # type: ignore[attr-defined]  # untyped library
        assert isinstance(result, str)
        return result


_USERNAME: Final = _Profile("UsernameCaseMapped")
_OPAQUE: Final = _Profile("OpaqueString")


def _check_length(value: str, what: str) -> str:
    if not value:
        raise InvalidJID(f"empty {what}")
    if len(value) > MAX_PART_BYTES // 4 and len(value.encode("utf-8")) > MAX_PART_BYTES:
        raise InvalidJID(f"{what} longer than {MAX_PART_BYTES} bytes")
    return value


@lru_cache(maxsize=16384)
def normalize_localpart(value: str) -> str:
    """Return the normalised localpart, or raise :class:`InvalidJID`."""
    if not value:
        raise InvalidJID("empty localpart")
    if value.isascii() and _LOCAL_ASCII_OK.issuperset(value):
        return _check_length(value.lower(), "localpart")
    try:
        result = _USERNAME.enforce(value)
    except UnicodeEncodeError as exc:
        raise InvalidJID(f"invalid localpart: {exc.reason}") from None
    if not _LOCAL_FORBIDDEN.isdisjoint(result):
        raise InvalidJID("localpart contains a forbidden character")
    return _check_length(result, "localpart")


@lru_cache(maxsize=16384)
def normalize_resource(value: str) -> str:
    """Return the normalised resourcepart, or raise :class:`InvalidJID`."""
    if not value:
        raise InvalidJID("empty resourcepart")
    if value.isascii() and _RESOURCE_ASCII_OK.issuperset(value):
        return _check_length(value, "resourcepart")
    try:
        result = _OPAQUE.enforce(value)
    except UnicodeEncodeError as exc:
        raise InvalidJID(f"invalid resourcepart: {exc.reason}") from None
    return _check_length(result, "resourcepart")


def _check_label(label: str) -> None:
    if not label:
        raise InvalidJID("empty label in domainpart")
    if label.isascii():
        if len(label) > _MAX_LABEL or not _LABEL_ASCII_OK.issuperset(label):
            raise InvalidJID("invalid label in domainpart")
        return
    try:
        alabel = label.encode("idna")
    except UnicodeError:
        raise InvalidJID("domain label cannot be converted with IDNA") from None
    if len(alabel) > _MAX_LABEL:
        raise InvalidJID("domain label too long")


@lru_cache(maxsize=16384)
def normalize_domain(value: str) -> str:
    """Return the normalised domainpart, or raise :class:`InvalidJID`."""
    if value.startswith("["):
        if not value.endswith("]"):
            raise InvalidJID("unterminated IP literal")
        try:
            addr = ipaddress.IPv6Address(value[1:-1])
        except ValueError:
            raise InvalidJID("invalid IPv6 literal") from None
        return f"[{addr.compressed}]"
    if not value.isascii():
        # Width mapping (full-width to half-width) as RFC 7622 §3.2 asks, then case and NFC.
        value = "".join(
            unicodedata.normalize("NFKC", ch)
            if unicodedata.decomposition(ch).startswith(("<wide>", "<narrow>"))
            else ch
            for ch in value.translate(_DOTS)
        )
        value = unicodedata.normalize("NFC", value.lower())
    else:
        value = value.lower()
    if value.endswith("."):
        value = value[:-1]
    _check_length(value, "domainpart")
    for label in value.split("."):
        _check_label(label)
    return value


@dataclass(frozen=True, slots=True)
class JID:
    """A normalised XMPP address. Use :meth:`parse` or :meth:`make` to build one."""

    local: str | None
    domain: str
    resource: str | None = None

    @staticmethod
    def parse(text: str) -> JID:
        """Parse and normalise ``text`` (RFC 7622 §3.1); raise :class:`InvalidJID`."""
        return _parse(text)

    @staticmethod
    def parse_account(text: str) -> JID:
        """An account's address (``user@domain``, no resource); raise :class:`InvalidJID`
        naming what is wrong."""
        try:
            jid = _parse(text)
        except InvalidJID as exc:
            raise InvalidJID(f"{text!r} is not a valid JID ({exc})") from exc
        if jid.local is None or jid.resource is not None:
            raise InvalidJID(f"{text!r} is not an account address (user@domain)")
        return jid

    @staticmethod
    def salvage(text: str) -> str | None:
        """Of a malformed address, the bare JID or the domain when that much is valid (an
        error comes from where the stanza went, RFC 6120 §8.3.1); None when neither is."""
        for candidate in (text.partition("/")[0], text.partition("/")[0].rpartition("@")[2]):
            try:
                return str(_parse(candidate))
            except InvalidJID:
                continue
        return None

    @staticmethod
    def make(local: str | None, domain: str, resource: str | None = None) -> JID:
        """Normalise each given part and build a JID; raise :class:`InvalidJID`."""
        return JID(
            None if local is None else normalize_localpart(local),
            normalize_domain(domain),
            None if resource is None else normalize_resource(resource),
        )

    @property
    def bare(self) -> JID:
        """This JID without its resourcepart."""
        if self.resource is None:
            return self
        return JID(self.local, self.domain)

    @property
    def is_bare(self) -> bool:
        return self.resource is None

    def with_resource(self, resource: str) -> JID:
        """This JID with ``resource`` (normalised) as its resourcepart."""
        return JID(self.local, self.domain, normalize_resource(resource))

    def __str__(self) -> str:
        text = self.domain if self.local is None else f"{self.local}@{self.domain}"
        return text if self.resource is None else f"{text}/{self.resource}"


@lru_cache(maxsize=65536)
def _parse(text: str) -> JID:
    slash = text.find("/")
    if slash == -1:
        head, resource = text, None
    else:
        head, resource = text[:slash], text[slash + 1 :]
    at = head.find("@")
    if at == -1:
        local, domain = None, head
    else:
        local, domain = head[:at], head[at + 1 :]
    return JID.make(local, domain, resource)
