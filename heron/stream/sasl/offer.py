"""What a client stream offers for authentication, and the base64 every SASL element carries.

RFC 6120 §6.4: the mechanisms, strongest first, with the -PLUS variants only when TLS gave
channel-binding data and PLAIN only under TLS (§13.9.4); under TLS also XEP-0388 (SASL2)
with Bind2 (XEP-0386), stream resumption (XEP-0198) and FAST (XEP-0484) inline, the
SCRAM upgrade tasks (XEP-0480), and the channel-binding types
(XEP-0440); FAST offers the hashed-token mechanisms this TLS session can bind (ht.py).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping

from heron import ns
from heron.jid import JID, InvalidJID
from heron.xmlstream import Element

from . import ht, upgrade
from .errors import SaslFailure


def client_mechanisms(channel_bindings: Collection[str], *, is_tls: bool) -> list[str]:
    names = [f"SCRAM-{h}-PLUS" for h in ("SHA-512", "SHA-256", "SHA-1") if channel_bindings]
    names += ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"]
    if is_tls:
        names.append("PLAIN")
    return names


def add_auth_features(
    features: Element, channel_bindings: Mapping[str, bytes], *, is_tls: bool
) -> None:
    """The SASL, SASL2 and channel-binding features of a stream not yet authenticated."""
    mechanisms = client_mechanisms(channel_bindings, is_tls=is_tls)
    offered = features.add("mechanisms", ns.SASL)
    for name in mechanisms:
        offered.add("mechanism", ns.SASL, text=name)
    if is_tls:
        sasl2 = features.add("authentication", ns.SASL2)
        for name in mechanisms:
            sasl2.add("mechanism", ns.SASL2, text=name)
        inline = sasl2.add("inline", ns.SASL2)
        inline.add("bind", ns.BIND2)
        inline.add("sm", ns.SM)  # XEP-0198: <resume/> inline in <authenticate/>
        upgrade.advertise(sasl2)  # XEP-0480's SCRAM upgrade tasks
        fast = inline.add("fast", ns.FAST)
        for name in ht.offered(channel_bindings):
            fast.add("mechanism", ns.FAST, text=name)
    if channel_bindings:
        cb = features.add("sasl-channel-binding", ns.SASL_CB)
        for cb_type in channel_bindings:
            cb.add("channel-binding", ns.SASL_CB, {"type": cb_type})


def check_authzid(authzid: str, authcid: str, domain: str) -> None:
    """RFC 6120 §6.3.8: a client may name an authorization identity, but only its own
    account (this server has no proxy authorization)."""
    if not authzid:
        return
    try:
        if JID.parse(authzid).bare != JID.make(authcid, domain):
            raise SaslFailure("invalid-authzid")
    except InvalidJID as exc:
        raise SaslFailure("invalid-authzid") from exc


def decode_payload(el: Element) -> bytes:
    """An element's base64 payload; "=" (or nothing) is empty (RFC 6120 §6.4.2)."""
    text = el.text.strip()
    if text in ("", "="):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslFailure("incorrect-encoding") from exc
