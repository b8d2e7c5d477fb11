"""SASL mechanisms: SCRAM (RFC 5802, RFC 7677), PLAIN (RFC 4616) and channel binding."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import secrets
from collections.abc import Mapping

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from heron.credentials import HASHES, ScramKeys, derive_all, derive_keys, fake_keys
from heron.stream.sasl import (
    SaslFailure,
    ScramServer,
    mechanism_names,
    parse_mechanism,
    parse_plain,
    tls_server_end_point,
    verify_plain,
)

SECRET = b"server-secret-for-fake-keys"
NO_CB: Mapping[str, bytes] = {}
PASSWORD = "pencil"  # what run() stores for every user


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ScramClient:
    """Just enough of a SCRAM client (RFC 5802 §3) to drive the server."""

    def __init__(
        self,
        hash_name: str,
        username: str,
        password: str,
        *,
        gs2_flag: str = "n",
        cb_data: bytes = b"",
        authzid: str | None = None,
        nonce: str | None = None,
    ) -> None:
        self.algo = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}[hash_name]
        self.password = password.encode()
        self.nonce = nonce or secrets.token_urlsafe(18)
        name = username.replace("=", "=3D").replace(",", "=2C")
        authz = "" if authzid is None else "a=" + authzid.replace("=", "=3D").replace(",", "=2C")
        self.gs2 = f"{gs2_flag},{authz},"
        self.cb_data = cb_data
        self.first_bare = f"n={name},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(item.split("=", 1) for item in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac(
            self.algo, self.password, base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.digest(salted, b"Client Key", self.algo)
        stored_key = hashlib.new(self.algo, client_key).digest()
        without_proof = f"c={b64(self.gs2.encode() + self.cb_data)},r={attrs['r']}"
        auth = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth, self.algo)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self.algo)
        self.server_signature = hmac.digest(server_key, auth, self.algo)
        return f"{without_proof},p={b64(proof)}".encode()


def run(
    client: ScramClient,
    server: ScramServer,
    keys: ScramKeys | None = None,
) -> bytes:
    assert server.start(client.first())
    if keys is None:
        keys = derive_keys(PASSWORD, server.hash_name, iterations=4096)
    assert keys.hash_name == server.hash_name
    return server.finish(client.final(server.server_first(keys)))


# --- RFC test vectors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hash_name", "client_first", "server_nonce", "salt", "server_first", "final", "verifier"),
    [
        (  # RFC 5802 §5
            "SHA-1",
            b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "QSXCR+Q6sek8bf92",
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ),
        (  # RFC 7677 §3
            "SHA-256",
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ),
    ],
)
def test_rfc_vectors(
    hash_name: str,
    client_first: bytes,
    server_nonce: str,
    salt: str,
    server_first: bytes,
    final: bytes,
    verifier: bytes,
) -> None:
    server = ScramServer(
        hash_name, plus=False, plus_offered=False, channel_bindings=NO_CB, nonce=server_nonce
    )
    assert server.mechanism_name == f"SCRAM-{hash_name}"
    assert server.start(client_first) == "user"
    assert server.authzid is None
    keys = derive_keys("pencil", hash_name, salt=base64.b64decode(salt), iterations=4096)
    assert server.server_first(keys) == server_first
    assert server.finish(final) == verifier


# --- full exchanges ------------------------------------------------------------------------


@pytest.mark.parametrize("hash_name", HASHES)
def test_full_exchange_every_hash(hash_name: str) -> None:
    server = ScramServer(hash_name, plus=False, plus_offered=False, channel_bindings=NO_CB)
    client = ScramClient(hash_name, "juliet", "pencil")
    assert run(client, server) == b"v=" + b64(client.server_signature).encode()
    assert server.username == "juliet"


def test_derive_all_gives_every_hash_its_own_salt() -> None:
    keys = derive_all("pencil", iterations=16)
    assert [k.hash_name for k in keys] == list(HASHES)
    assert len({k.salt for k in keys}) == 3
    for k in keys:
        server = ScramServer(k.hash_name, plus=False, plus_offered=False, channel_bindings=NO_CB)
        run(ScramClient(k.hash_name, "u", "pencil"), server, k)


def test_wrong_password_is_not_authorized() -> None:
    server = ScramServer("SHA-256", plus=False, plus_offered=False, channel_bindings=NO_CB)
    client = ScramClient("SHA-256", "user", "wrong")
    with pytest.raises(SaslFailure) as info:
        run(client, server)
    assert info.value.condition == "not-authorized"


def test_unknown_user_fails_at_the_proof_with_a_stable_salt() -> None:
    challenges = []
    for _ in range(2):
        server = ScramServer("SHA-256", plus=False, plus_offered=False, channel_bindings=NO_CB)
        client = ScramClient("SHA-256", "ghost", "pencil")
        user = server.start(client.first())
        challenge = server.server_first(fake_keys(user, "SHA-256", SECRET))
        challenges.append(dict(i.split("=", 1) for i in challenge.decode().split(",")))
        with pytest.raises(SaslFailure) as info:
            server.finish(client.final(challenge))
        assert info.value.condition == "not-authorized"
    assert challenges[0]["s"] == challenges[1]["s"]
    assert challenges[0]["i"] == "4096"
    assert challenges[0]["r"] != challenges[1]["r"]
    assert fake_keys("ghost", "SHA-256", SECRET).salt != fake_keys("ghost2", "SHA-256", SECRET).salt
    assert fake_keys("ghost", "SHA-1", SECRET).salt != fake_keys("ghost", "SHA-256", SECRET).salt


def test_authzid_and_escaped_username() -> None:
    server = ScramServer("SHA-1", plus=False, plus_offered=False, channel_bindings=NO_CB)
    client = ScramClient("SHA-1", "a,b=c", "pencil", authzid="juliet@example.com")
    run(client, server)
    assert server.username == "a,b=c"
    assert server.authzid == "juliet@example.com"


def test_tampered_nonce_fails() -> None:
    server = ScramServer("SHA-256", plus=False, plus_offered=False, channel_bindings=NO_CB)
    client = ScramClient("SHA-256", "user", "pencil")
    server.start(client.first())
    challenge = server.server_first(derive_keys("pencil", "SHA-256", iterations=16))
    final = client.final(challenge).replace(b",r=", b",r=x", 1)
    with pytest.raises(SaslFailure, match="not-authorized"):
        server.finish(final)


def test_steps_out_of_order_are_a_local_error() -> None:
    server = ScramServer("SHA-256", plus=False, plus_offered=False, channel_bindings=NO_CB)
    with pytest.raises(RuntimeError):
        server.finish(b"c=biws,r=x,p=AA==")
    server.start(b"n,,n=user,r=abc")
    with pytest.raises(ValueError, match="SHA-1"):
        server.server_first(derive_keys("pencil", "SHA-1", iterations=16))


# --- channel binding ---------------------------------------------------------------------


def test_y_flag_is_a_downgrade_when_plus_is_offered() -> None:
    server = ScramServer("SHA-256", plus=False, plus_offered=True, channel_bindings=NO_CB)
    with pytest.raises(SaslFailure) as info:
        server.start(b"y,,n=user,r=abc")
    assert info.value.condition == "not-authorized"


def test_y_flag_accepted_when_plus_is_not_offered() -> None:
    server = ScramServer("SHA-256", plus=False, plus_offered=False, channel_bindings=NO_CB)
    run(ScramClient("SHA-256", "user", "pencil", gs2_flag="y"), server)


def make_cert(algorithm: hashes.SHA256 | hashes.SHA384 | None) -> bytes:
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    key = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm is None
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_tls_server_end_point_uses_the_signature_hash() -> None:
    der = make_cert(hashes.SHA384())
    assert tls_server_end_point(der) == hashlib.sha384(der).digest()
    der = make_cert(hashes.SHA256())
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


def test_tls_server_end_point_undefined_for_ed25519() -> None:
    with pytest.raises(ValueError, match="undefined"):
        tls_server_end_point(make_cert(None))


@pytest.mark.parametrize("hash_name", HASHES)
def test_plus_with_tls_server_end_point(hash_name: str) -> None:
    cb = tls_server_end_point(make_cert(hashes.SHA256()))
    bindings = {"tls-server-end-point": cb, "tls-exporter": b"\x01" * 32}
    server = ScramServer(hash_name, plus=True, plus_offered=True, channel_bindings=bindings)
    assert server.mechanism_name == f"SCRAM-{hash_name}-PLUS"
    client = ScramClient(hash_name, "user", "pencil", gs2_flag="p=tls-server-end-point", cb_data=cb)
    run(client, server)
    assert server.channel_binding == "tls-server-end-point"


def test_plus_with_mismatched_binding_data_fails() -> None:
    bindings = {"tls-exporter": b"\x01" * 32}
    server = ScramServer("SHA-256", plus=True, plus_offered=True, channel_bindings=bindings)
    client = ScramClient("SHA-256", "user", "pencil", gs2_flag="p=tls-exporter", cb_data=b"\x02")
    with pytest.raises(SaslFailure) as info:
        run(client, server)
    assert info.value.condition == "not-authorized"


def test_plus_gs2_header_must_match_in_c() -> None:
    bindings = {"tls-exporter": b"\x01" * 32}
    server = ScramServer("SHA-256", plus=True, plus_offered=True, channel_bindings=bindings)
    client = ScramClient("SHA-256", "user", "pencil", gs2_flag="p=tls-exporter")
    server.start(client.first())
    client.gs2 = "n,,"  # claims no channel binding in the final message
    challenge = server.server_first(derive_keys("pencil", "SHA-256", iterations=16))
    with pytest.raises(SaslFailure, match="not-authorized"):
        server.finish(client.final(challenge))


@pytest.mark.parametrize(
    ("plus", "bindings", "message", "condition"),
    [
        (True, {"tls-exporter": b"x"}, b"n,,n=user,r=abc", "malformed-request"),
        (True, {"tls-exporter": b"x"}, b"y,,n=user,r=abc", "malformed-request"),
        (True, {"tls-exporter": b"x"}, b"p=tls-unique,,n=user,r=abc", "not-authorized"),
        (False, {"tls-exporter": b"x"}, b"p=tls-exporter,,n=user,r=abc", "malformed-request"),
        (False, {}, b"x,,n=user,r=abc", "malformed-request"),
        (False, {}, b"n,,m=ext,n=user,r=abc", "malformed-request"),
        (False, {}, b"n,,n=user", "malformed-request"),
        (False, {}, b"n,,r=abc,n=user", "malformed-request"),
        (False, {}, b"n,,n=,r=abc", "malformed-request"),
        (False, {}, b"n,,n=us=2Ber,r=abc", "malformed-request"),
        (False, {}, b"n,,n=user,r=", "malformed-request"),
        (False, {}, b"n,,n=user,r=a\x7fb", "malformed-request"),
        (False, {}, b"n,,n=user,r=a b", "malformed-request"),
        (False, {}, b"n,b=x,n=user,r=abc", "malformed-request"),
        (False, {}, b"n,,n=\xff,r=abc", "malformed-request"),
        (False, {}, b"n,,n=us\x00er,r=abc", "malformed-request"),
        (False, {}, b"n", "malformed-request"),
        (False, {}, b"", "malformed-request"),
    ],
)
def test_bad_client_first(
    plus: bool, bindings: dict[str, bytes], message: bytes, condition: str
) -> None:
    server = ScramServer("SHA-256", plus=plus, plus_offered=True, channel_bindings=bindings)
    with pytest.raises(SaslFailure) as info:
        server.start(message)
    assert info.value.condition == condition


@pytest.mark.parametrize(
    "final",
    [b"r=x,c=biws,p=AA==", b"c=biws,r=x", b"c=bi!ws,r=x,p=AA==", b"c=biws,r=x,p=AA==,x=y", b""],
)
def test_bad_client_final(final: bytes) -> None:
    server = ScramServer("SHA-256", plus=False, plus_offered=False, channel_bindings=NO_CB)
    server.start(b"n,,n=user,r=abc")
    server.server_first(derive_keys("pencil", "SHA-256", iterations=16))
    with pytest.raises(SaslFailure, match="malformed-request"):
        server.finish(final)


def test_client_first_extension_after_nonce_is_ignored() -> None:
    server = ScramServer("SHA-1", plus=False, plus_offered=False, channel_bindings=NO_CB)
    assert server.start(b"n,,n=user,r=abc,x=whatever") == "user"


# --- mechanism names ---------------------------------------------------------------------


def test_mechanism_names() -> None:
    assert mechanism_names(True) == [
        "SCRAM-SHA-512-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-512",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ]
    assert mechanism_names(False) == ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    for name in mechanism_names(True)[:-1]:
        parsed = parse_mechanism(name)
        assert parsed is not None
        assert (
            ScramServer(
                parsed[0], plus=parsed[1], plus_offered=True, channel_bindings=NO_CB
            ).mechanism_name
            == name
        )


@pytest.mark.parametrize("name", ["PLAIN", "SCRAM-MD5", "SCRAM-SHA-256-PLUS-PLUS", "SCRAM-", ""])
def test_parse_mechanism_rejects(name: str) -> None:
    assert parse_mechanism(name) is None


def test_sasl_failure_checks_its_condition() -> None:
    assert str(SaslFailure("aborted", "bye")) == "aborted: bye"
    with pytest.raises(ValueError, match="unknown"):
        SaslFailure("bad-condition")


# --- PLAIN ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00tim\x00tanstaaftanstaaf", ("", "tim", "tanstaaftanstaaf")),
        (b"Ursel\x00Kurt\x00xipj3plmq", ("Ursel", "Kurt", "xipj3plmq")),
        ("\x00j\u00fcliet\x00p\u00e4ss".encode(), ("", "j\u00fcliet", "p\u00e4ss")),
    ],
)
def test_parse_plain(data: bytes, expected: tuple[str, str, str]) -> None:
    assert parse_plain(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"tim\x00pass",
        b"\x00\x00pass",
        b"\x00tim\x00",
        b"\x00tim\x00pa\x00ss",
        b"\x00t\xffim\x00pass",
        b"\x00tim\x00" + b"p" * 2000,
    ],
)
def test_parse_plain_malformed(data: bytes) -> None:
    with pytest.raises(SaslFailure) as info:
        parse_plain(data)
    assert info.value.condition == "malformed-request"


def test_verify_plain() -> None:
    keys = derive_keys("pencil", "SHA-256", iterations=64)
    assert verify_plain("pencil", keys)
    assert not verify_plain("Pencil", keys)
    assert not verify_plain("", keys)
    assert not verify_plain("pencil", fake_keys("user", "SHA-256", SECRET, iterations=64))


def test_password_preparation_is_applied() -> None:
    # OpaqueString maps non-ASCII spaces to U+0020 and applies NFC.
    keys = derive_keys("a\u00a0b\u0065\u0301", "SHA-1", iterations=16)
    assert verify_plain("a b\u00e9", keys)
    with pytest.raises(ValueError, match="not allowed"):
        derive_keys("bell\x07", "SHA-1")
