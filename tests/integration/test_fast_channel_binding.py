"""FAST (XEP-0484) with channel binding: HT-SHA-256-ENDP hashes the server certificate's
tls-server-end-point data (RFC 5929 §4) into the token proof, so a token stolen and replayed
through a relay holding another certificate fails; and each token works only with the
mechanism it was requested for (XEP-0484 §3.4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import ssl

from heron.app import RunningServer
from heron.jid import JID
from heron.stream.sasl.channel_binding import tls_server_end_point
from tests.integration.test_sasl2_fast import PASSWORD, fast_login, open_secure, scram_login
from tests.rawclient import RawClient

ENDP = "HT-SHA-256-ENDP"


def end_point(raw: RawClient) -> bytes:
    tls = raw.writer.get_extra_info("ssl_object")
    assert isinstance(tls, ssl.SSLObject)
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return tls_server_end_point(der)


async def endp_token(server: RunningServer) -> str:
    raw, features = await open_secure(server)
    try:
        mechanisms = re.findall(r"<mechanism>(HT-[^<]+)</mechanism>", features)
        assert mechanisms == [ENDP, "HT-SHA-256-NONE"]  # XEP-0484 §3.1: bound one first
        success = await scram_login(raw, "carol", PASSWORD, "phone", fast=ENDP)
        token = re.search(r"<token [^>]*token=.([^'\"]+)", success)
        assert token is not None, success
        return token[1]
    finally:
        raw.close()


async def test_endp_token_logs_in_bound_to_the_certificate(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("carol@localhost"), PASSWORD)
    token = await endp_token(server)

    raw, _ = await open_secure(server)
    try:
        cb = end_point(raw)
        answer = await fast_login(raw, "carol", token, "phone", ENDP, cb)
        assert answer.startswith("<success"), answer
        responder = hmac.new(token.encode(), b"Responder" + cb, hashlib.sha256).digest()
        assert f"<additional-data>{base64.b64encode(responder).decode()}<" in answer
    finally:
        raw.close()

    # What is stored cannot log anyone in: no token and no proof in the table.
    rows = await server.server.fast.db.fetch("SELECT proof_hash, responder, seed FROM fast_tokens")
    for row in rows:
        stored = b"".join(bytes(value or b"") for value in row)
        assert token.encode() not in stored
        assert base64.urlsafe_b64decode(token + "==") not in stored
    assert rows  # the token's row is there

    # The proof made with another certificate's binding (a relay in the middle) fails.
    raw, _ = await open_secure(server)
    try:
        other = hashlib.sha256(b"another certificate").digest()
        answer = await fast_login(raw, "carol", token, "phone", ENDP, other)
        assert "<not-authorized" in answer, answer
    finally:
        raw.close()

    # XEP-0484 §3.4: a token for a channel-bound mechanism fails without binding.
    raw, _ = await open_secure(server)
    try:
        answer = await fast_login(raw, "carol", token, "phone")
        assert "<not-authorized" in answer, answer
    finally:
        raw.close()

    # §3.6: logging out with the token invalidates it, and no new token comes back.
    raw, _ = await open_secure(server)
    try:
        answer = await fast_login(
            raw, "carol", token, "phone", ENDP, end_point(raw), fast_attrs=" invalidate='true'"
        )
        assert answer.startswith("<success"), answer
        assert "<token" not in answer
    finally:
        raw.close()
    raw, _ = await open_secure(server)
    try:
        answer = await fast_login(raw, "carol", token, "phone", ENDP, end_point(raw))
        assert "<not-authorized" in answer, answer
    finally:
        raw.close()


async def test_a_token_for_a_mechanism_not_offered_is_refused(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("dave@localhost"), PASSWORD)
    raw, _ = await open_secure(server)
    try:
        # CPython's TLS layer cannot export keying material: no tls-exporter, no EXPR.
        failure = await scram_login(raw, "dave", PASSWORD, "phone", fast="HT-SHA-256-EXPR")
        assert "<invalid-mechanism" in failure, failure
    finally:
        raw.close()
