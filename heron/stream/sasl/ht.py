"""The Hashed Token SASL mechanisms FAST uses (XEP-0484, draft-schmaus-kitten-sasl-ht).

``HT-SHA-256-<cb>``: the client sends ``authcid NUL HMAC(token, "Initiator" || cb-data)``
in one message; the server answers ``HMAC(token, "Responder" || cb-data)``. The suffix
names the channel binding whose data is ``cb-data`` (empty for NONE), so a token bound to
ENDP proves the client saw this server's certificate, and one bound to EXPR this very TLS
session. A token works only with the mechanism it was requested for (XEP-0484 §3.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

NONE: Final = "HT-SHA-256-NONE"
# mechanism → the channel binding type (RFC 5929, RFC 9266) its cb-data comes from
BINDINGS: Final[Mapping[str, str]] = {
    "HT-SHA-256-EXPR": "tls-exporter",
    "HT-SHA-256-ENDP": "tls-server-end-point",
}


def offered(channel_bindings: Mapping[str, bytes]) -> list[str]:
    """The HT mechanisms this TLS session can serve, channel-bound ones first."""
    bound = [mech for mech, cb_type in BINDINGS.items() if cb_type in channel_bindings]
    return [*bound, NONE]


def cb_data(mechanism: str, channel_bindings: Mapping[str, bytes]) -> bytes | None:
    """The channel binding data ``mechanism`` hashes in, or None when it cannot be used."""
    if mechanism == NONE:
        return b""
    cb_type = BINDINGS.get(mechanism)
    return channel_bindings.get(cb_type) if cb_type is not None else None
