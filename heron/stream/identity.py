"""Peer identity in certificates (RFC 6125, RFC 6120 §13.7): which names a certificate holds
for a server, and whether one of them is a given domain."""

from __future__ import annotations

from typing import Final

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

XMPP_ADDR_OID: Final = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
SRV_NAME_OID: Final = ObjectIdentifier("1.3.6.1.5.5.7.8.7")


def dns_name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching: exact, or a `*` as the whole leftmost label standing for one label."""
    pattern = pattern.lower().rstrip(".")
    name = name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def _der_string(value: bytes) -> str | None:
    """The text of a DER UTF8String or IA5String (otherName values)."""
    if len(value) < 2 or value[0] not in (0x0C, 0x16):
        return None
    length, at = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, at = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    try:
        return value[at : at + length].decode()
    except UnicodeDecodeError:
        return None


def certificate_names_domain(der: bytes, domain: str) -> bool:
    """RFC 6125 / RFC 6120 §13.7.2 for a peer server: a DNS-ID, an SRV-ID
    (`_xmpp-server.domain`) or an XmppAddr naming ``domain``."""
    try:
        leaf = x509.load_der_x509_certificate(der)
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    if any(dns_name_matches(p, domain) for p in san.get_values_for_type(x509.DNSName)):
        return True
    for other in san.get_values_for_type(x509.OtherName):
        text = _der_string(other.value)
        if text is None:
            continue
        if other.type_id == XMPP_ADDR_OID and text.lower() == domain:
            return True
        if other.type_id == SRV_NAME_OID and text.lower() in (
            f"_xmpp-server.{domain}",
            f"_xmpps-server.{domain}",
        ):
            return True
    return False
