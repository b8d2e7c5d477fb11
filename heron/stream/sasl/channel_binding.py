"""Channel-binding data (RFC 5929, RFC 9266) that the transport hands to SCRAM-PLUS."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

__all__ = ["tls_server_end_point"]


def tls_server_end_point(cert_der: bytes) -> bytes:
    """The ``tls-server-end-point`` binding of a DER certificate (RFC 5929 §4.1).

    The certificate is hashed with the hash of its signature algorithm, except that MD5 and
    SHA-1 become SHA-256. Raise ValueError when the binding is undefined, as for Ed25519 and
    Ed448 signatures, which have no separate hash; the caller should then not offer this type.
    """
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise ValueError("unsupported certificate signature algorithm") from None
    if algorithm is None:
        raise ValueError("tls-server-end-point is undefined for this signature algorithm")
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return digest.finalize()
