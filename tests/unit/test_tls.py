"""TLS: self-signed certificates, the server policy, SNI, and certificate checks."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from heron.app import start
from heron.config import config_from_dict
from heron.tls import (
    XMPP_ADDR_OID,
    TlsError,
    check_certificate,
    der_utf8_string,
    dns_name_matches,
    ensure_certificate,
    server_context,
    sni_context,
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_certificate("example.org", tmp_path_factory.mktemp("certs"))


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str
) -> tuple[str | None, str | None]:
    """One loopback handshake; (client's TLS version, server's error) after a byte is echoed."""
    listener = socket.create_server(("127.0.0.1", 0))
    error: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(10)
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(1))
        except (ssl.SSLError, OSError) as exc:
            error.append(str(exc))
            conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname(), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            tls.sendall(b"x")
            assert tls.recv(1) == b"x"
            return tls.version(), None
    finally:
        thread.join(timeout=10)
        listener.close()


def trusting(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    assert ctx.check_hostname
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # what Python 3.13+ does by default
    return ctx


def test_generated_certificate(pair: tuple[Path, Path]) -> None:
    cert_path, key_path = pair
    assert cert_path.name == "example.org.crt"
    assert key_path.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "example.org",
        "conference.example.org",
        "upload.example.org",
        "pubsub.example.org",
        "proxy.example.org",
    ]
    others = san.get_values_for_type(x509.OtherName)
    assert [o.type_id for o in others] == [XMPP_ADDR_OID]
    assert others[0].value == b"\x0c\x0bexample.org"
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc < now - datetime.timedelta(minutes=30)
    assert cert.not_valid_after_utc > now + datetime.timedelta(days=300)
    assert check_certificate(cert_path, "example.org") == []
    assert check_certificate(cert_path, "upload.example.org") == []


def test_der_utf8_string_long_form() -> None:
    assert der_utf8_string("é") == b"\x0c\x02\xc3\xa9"
    assert der_utf8_string("a" * 200) == b"\x0c\x81\xc8" + b"a" * 200
    assert der_utf8_string("a" * 300)[:4] == b"\x0c\x82\x01\x2c"


def test_existing_certificate_is_reused(tmp_path: Path) -> None:
    first = ensure_certificate("localhost", tmp_path)
    before = first[0].read_bytes()
    assert ensure_certificate("localhost", tmp_path) == first
    assert first[0].read_bytes() == before


def test_handshake_verifies_hostname(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    version, _ = handshake(server_context(cert, key), trusting(cert), "example.org")
    assert version == "TLSv1.3"
    version, _ = handshake(server_context(cert, key), trusting(cert), "conference.example.org")
    assert version == "TLSv1.3"


def test_tls12_uses_forward_secret_aead(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    client = trusting(cert)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    listener_ctx = server_context(cert, key)
    names = [c["name"] for c in listener_ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert names
    assert all(n.startswith("ECDHE-") and ("GCM" in n or "CHACHA20" in n) for n in names)
    assert handshake(listener_ctx, client, "example.org")[0] == "TLSv1.2"


def test_wrong_hostname_refused(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_context(cert, key), trusting(cert), "example.net")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls11_client_refused(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client really offer TLS 1.1
    client.minimum_version = ssl.TLSVersion.TLSv1_1
    client.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError, match=r"(?i)protocol.version") as info:
        handshake(server_context(cert, key), client, "example.org")
    assert "ALERT" in str(info.value)  # the server answered with an alert; not a client refusal


def test_sni_picks_certificate(tmp_path: Path) -> None:
    org = ensure_certificate("example.org", tmp_path)
    net = ensure_certificate("example.net", tmp_path)
    ctx = sni_context({"example.org": org, "example.net": net}, "example.org")
    assert handshake(ctx, trusting(net[0]), "example.net")[0] == "TLSv1.3"
    assert handshake(ctx, trusting(net[0]), "pubsub.example.net")[0] == "TLSv1.3"
    assert handshake(ctx, trusting(org[0]), "example.org")[0] == "TLSv1.3"
    # An unknown name gets the default domain's certificate (which then fails its check).
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(ctx, trusting(net[0]), "other.test")
    with pytest.raises(TlsError, match="default domain"):
        sni_context({"example.org": org}, "example.net")


def test_bad_files_raise_tls_error(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    cert, key = pair
    with pytest.raises(TlsError, match=r"missing\.key"):
        server_context(cert, tmp_path / "missing.key")
    with pytest.raises(TlsError, match=r"missing\.crt"):
        server_context(tmp_path / "missing.crt", key)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    with pytest.raises(TlsError, match=r"garbage\.key"):
        server_context(cert, garbage)
    _other_cert, other_key = ensure_certificate("example.net", tmp_path)
    with pytest.raises(TlsError, match="does not match"):
        server_context(cert, other_key)


def write_cert(
    tmp_path: Path, name: str, days: tuple[int, int], san: list[str] | None
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
    )
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False
        )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_check_certificate_problems(tmp_path: Path) -> None:
    expired, expired_key = write_cert(tmp_path, "old.example", (-30, -1), ["old.example"])
    assert any("expired" in p for p in check_certificate(expired, "old.example"))
    with pytest.raises(TlsError, match="expired"):
        server_context(expired, expired_key)
    future, _ = write_cert(tmp_path, "new.example", (2, 30), ["new.example"])
    assert any("not valid before" in p for p in check_certificate(future, "new.example"))
    cn_only, _ = write_cert(tmp_path, "cn.example", (-1, 30), None)
    assert any("subjectAltName" in p for p in check_certificate(cn_only, "cn.example"))
    wildcard, _ = write_cert(tmp_path, "wild.example", (-1, 30), ["*.wild.example"])
    assert check_certificate(wildcard, "chat.wild.example") == []
    assert any("not among" in p for p in check_certificate(wildcard, "wild.example"))
    assert check_certificate(tmp_path / "none.crt", "x.example")


def test_expired_self_signed_is_replaced(tmp_path: Path) -> None:
    cert, _key = write_cert(tmp_path, "stale.example", (-30, -1), ["stale.example"])
    new_cert, new_key = ensure_certificate("stale.example", tmp_path)
    assert new_cert == cert
    assert check_certificate(new_cert, "stale.example") == []
    server_context(new_cert, new_key)


def test_dns_name_matching() -> None:
    assert dns_name_matches("Example.org.", "example.org")
    assert dns_name_matches("*.example.org", "a.example.org")
    assert not dns_name_matches("*.example.org", "a.b.example.org")
    assert not dns_name_matches("*.example.org", "example.org")


async def test_start_refuses_a_certificate_for_another_domain(tmp_path: Path) -> None:
    cert, key = write_cert(tmp_path, "other.test", (-1, 30), ["other.test"])
    config = config_from_dict(
        {
            "data_dir": str(tmp_path / "data"),
            "listeners": [],
            "hosts": {"localhost": {"cert": str(cert), "key": str(key)}},
        },
        "test",
    )
    with pytest.raises(TlsError, match=r"other\.test\.crt: localhost is not among"):
        await start(config)
