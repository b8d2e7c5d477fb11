"""TLS policy, self-signed certificates for new hosts, and certificate checks for `heron check`.

Policy (`server_context`): TLS 1.2 or later, forward-secret AEAD suites only for TLS 1.2, no
compression, no renegotiation, server cipher preference. Certificates without a key, with a key
that does not match, or past their expiry are refused with a `TlsError` naming the file.

`ensure_certificate` makes an ECDSA P-256 self-signed certificate for a domain that has none:
subjectAltName DNS entries for the domain and its usual service subdomains plus an XmppAddr
(RFC 6120 §13.7.1.4). Clients trust it by using the certificate file itself as their CA file.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from heron.stream.identity import XMPP_ADDR_OID, dns_name_matches

log = logging.getLogger(__name__)

SERVICE_SUBDOMAINS: Final[tuple[str, ...]] = ("conference", "upload", "pubsub", "proxy")
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"
VALIDITY: Final = datetime.timedelta(days=365)
BACKDATE: Final = datetime.timedelta(hours=1)


class TlsError(Exception):
    """A certificate or key cannot be used; the message names the file and the reason."""


# --- self-signed certificates ------------------------------------------------------------------


def ensure_certificate(domain: str, cert_dir: Path) -> tuple[Path, Path]:
    """The (certificate, key) files for `domain` in `cert_dir`, created self-signed if absent.

    An existing pair is reused as it is, unless it is a self-signed certificate that has expired.
    Blocking (file I/O, key generation): call it from an executor inside the event loop.
    """
    cert_path = cert_dir / f"{domain}.crt"
    key_path = cert_dir / f"{domain}.key"
    if cert_path.is_file() and key_path.is_file() and not _expired_self_signed(cert_path):
        log.debug("reusing certificate %s for %s", cert_path, domain)
        return cert_path, key_path
    cert_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(domain, key)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.warning(
        "created a self-signed certificate for %s: %s (clients must trust this file)",
        domain,
        cert_path,
    )
    return cert_path, key_path


def _self_signed(domain: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(domain)]
    names += [x509.DNSName(f"{sub}.{domain}") for sub in SERVICE_SUBDOMAINS]
    names.append(x509.OtherName(XMPP_ADDR_OID, der_utf8_string(domain)))
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def der_utf8_string(text: str) -> bytes:
    """DER encoding of an ASN.1 UTF8String (tag 12), as an XmppAddr otherName value."""
    body = text.encode("utf-8")
    size = len(body)
    if size < 0x80:
        length = bytes([size])
    else:
        octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return b"\x0c" + length + body


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _expired_self_signed(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False  # not ours to replace; server_context will say what is wrong
    now = datetime.datetime.now(datetime.UTC)
    if cert.issuer == cert.subject and cert.not_valid_after_utc <= now:
        log.warning("self-signed certificate %s has expired; making a new one", cert_path)
        return True
    return False


# --- contexts ------------------------------------------------------------------------------


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context with Heron's policy and the given certificate chain and key."""
    leaf = _load_chain(cert)[0]
    private = _load_key(key)
    if _public_bytes(private.public_key()) != _public_bytes(leaf.public_key()):
        raise TlsError(f"{key}: this key does not match the certificate {cert}")
    if leaf.not_valid_after_utc <= datetime.datetime.now(datetime.UTC):
        raise TlsError(f"{cert}: the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_ciphers(TLS12_CIPHERS)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{cert}: cannot load it with the key {key}: {exc}") from exc
    return ctx


def sni_context(certs: Mapping[str, tuple[Path, Path]], default_domain: str) -> ssl.SSLContext:
    """A server context that picks each connection's certificate by SNI.

    A name without its own certificate uses its parent domain's (`conference.example.org` →
    `example.org`); an unknown or absent name gets `default_domain`'s.
    """
    if default_domain not in certs:
        raise TlsError(f"no certificate for the default domain {default_domain}")
    base = server_context(*certs[default_domain])
    renew_sni_context(base, certs, default_domain)
    return base


def renew_sni_context(
    base: ssl.SSLContext, certs: Mapping[str, tuple[Path, Path]], default_domain: str
) -> None:
    """Load the certificates again into a context `sni_context` made (a reload: renewed
    files, added or removed hosts). Listeners keep the same context object; handshakes from
    now on use the new certificates, established connections keep theirs."""
    if default_domain not in certs:
        raise TlsError(f"no certificate for the default domain {default_domain}")
    contexts = {domain.lower(): server_context(*files) for domain, files in certs.items()}
    base.load_cert_chain(*certs[default_domain])

    def choose(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name is None:
            return
        ctx = context_for(contexts, server_name)
        if ctx is not None:
            ssl_object.context = ctx

    base.sni_callback = choose


_T = TypeVar("_T")


def context_for(contexts: Mapping[str, _T], name: str) -> _T | None:
    """The entry (a context, a certificate) for `name` or its nearest parent domain, if any."""
    labels = name.lower().rstrip(".").split(".")
    for start in range(len(labels)):
        ctx = contexts.get(".".join(labels[start:]))
        if ctx is not None:
            return ctx
    return None


def _load_chain(cert: Path) -> list[x509.Certificate]:
    try:
        data = cert.read_bytes()
    except OSError as exc:
        raise TlsError(f"{cert}: cannot read the certificate: {exc.strerror or exc}") from exc
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsError(f"{cert}: not a PEM certificate: {exc}") from exc
    return chain


def _load_key(key: Path) -> PrivateKeyTypes:
    try:
        data = key.read_bytes()
    except OSError as exc:
        raise TlsError(f"{key}: cannot read the private key: {exc.strerror or exc}") from exc
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"{key}: not an unencrypted PEM private key: {exc}") from exc


def _public_bytes(public: PublicKeyTypes) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- checks --------------------------------------------------------------------------------


def check_certificate(cert: Path, domain: str) -> list[str]:
    """What is wrong with `cert` for serving `domain` (empty when nothing is)."""
    try:
        leaf = _load_chain(cert)[0]
    except TlsError as exc:
        return [str(exc)]
    problems: list[str] = []
    now = datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc <= now:
        problems.append(f"{cert}: expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if leaf.not_valid_before_utc > now:
        problems.append(f"{cert}: not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M}")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        problems.append(f"{cert}: no subjectAltName (clients refuse CN-only certificates)")
        return problems
    if not any(
        dns_name_matches(pattern, domain) for pattern in san.get_values_for_type(x509.DNSName)
    ):
        problems.append(f"{cert}: {domain} is not among its subjectAltName DNS names")
    return problems


# --- federation ----------------------------------------------------------------------------


def _trust(ctx: ssl.SSLContext, ca_file: Path | None) -> None:
    try:
        if ca_file is not None:
            ctx.load_verify_locations(cafile=ca_file)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{ca_file}: cannot load trusted certificates: {exc}") from exc


def s2s_server_context(
    certs: Mapping[str, tuple[Path, Path]],
    default_domain: str,
    *,
    request_certificates: bool,
    ca_file: Path | None,
) -> ssl.SSLContext:
    """The context for incoming server streams.

    With ``request_certificates`` peers are asked for a certificate and must present one the
    trust store accepts (Python's ``ssl`` cannot ask for one and accept any, so a server that
    allows dialback does not ask; peers then prove themselves by dialback).
    """
    base = sni_context(certs, default_domain)
    if request_certificates:
        contexts = [base] + [server_context(*files) for files in certs.values()]
        for ctx in contexts:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            _trust(ctx, ca_file)
        by_domain = {d.lower(): c for d, c in zip(certs, contexts[1:], strict=True)}

        def choose(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            ctx = context_for(by_domain, server_name) if server_name else None
            if ctx is not None:
                ssl_object.context = ctx

        base.sni_callback = choose
    return base


def s2s_client_context(
    cert: Path, key: Path, *, verify: bool, ca_file: Path | None
) -> ssl.SSLContext:
    """The context for our outgoing server streams: our certificate (for SASL EXTERNAL) and,
    with ``verify``, the peer's certificate checked against its domain name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_ciphers(TLS12_CIPHERS)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{cert}: cannot load it with the key {key}: {exc}") from exc
    if verify:
        _trust(ctx, ca_file)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
