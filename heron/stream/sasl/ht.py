"""The Hashed Token SASL mechanisms FAST uses (XEP-0484, draft-schmaus-kitten-sasl-ht).

``HT-SHA-256-<cb>``: the client sends ``authcid NUL HMAC(token, "Initiator" || cb-data)``
in one message; the server answers ``HMAC(token, "Responder" || cb-data)``. The suffix
names the channel binding whose data is ``cb-data`` (empty for NONE), so a token bound to
ENDP proves the client saw this server's certificate, and one bound to EXPR this very TLS
session. A token works only with the mechanism it was requested for (XEP-0484 §3.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from heron import ns
from heron.xmlstream import Element

from .errors import SaslFailure

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


@dataclass(frozen=True, slots=True)
class FastRequest:
    """What a SASL2 <authenticate/> with a FAST token says (XEP-0484 §3.4, §3.6)."""

    authcid: str
    agent: str
    proof: bytes
    invalidate: bool


def parse_request(request: Element, initial: bytes) -> FastRequest:
    """``authcid NUL proof`` from the initial response, the client's user-agent id (which
    tokens are issued to) and <fast/>; malformed-request when one is missing."""
    agent = request.find("user-agent", ns.SASL2)
    agent_id = agent.attrs.get("id", "") if agent is not None else ""
    fast = request.find("fast", ns.FAST)
    authcid, sep, proof = initial.partition(b"\0")
    if not sep or not agent_id or fast is None:
        raise SaslFailure("malformed-request")
    try:
        name = authcid.decode()
    except UnicodeDecodeError as exc:
        raise SaslFailure("malformed-request") from exc
    return FastRequest(name, agent_id, proof, fast.attrs.get("invalidate") in ("1", "true"))


def token_mechanism(
    request: Element, channel_bindings: Mapping[str, bytes], used: str, *, rotate: bool
) -> str | None:
    """The mechanism a new token is for: the one <request-token/> names (§3.2: it must be
    offered, else invalid-mechanism), or on rotation the one just used; None: no token."""
    wanted = request.find("request-token", ns.FAST)
    if wanted is None:
        return used if rotate else None
    mechanism = wanted.attrs.get("mechanism", NONE)
    if mechanism not in offered(channel_bindings):
        raise SaslFailure("invalid-mechanism", "no such FAST mechanism here")
    return mechanism
