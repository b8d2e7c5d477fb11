"""SASL mechanisms (RFC 6120 §6), sans-IO: SCRAM family, PLAIN and channel-binding helpers."""

from .channel_binding import tls_server_end_point
from .errors import CONDITIONS, SaslFailure
from .plain import parse_plain, verify_plain
from .scram import ScramServer, mechanism_names, parse_mechanism

__all__ = [
    "CONDITIONS",
    "SaslFailure",
    "ScramServer",
    "mechanism_names",
    "parse_mechanism",
    "parse_plain",
    "tls_server_end_point",
    "verify_plain",
]
