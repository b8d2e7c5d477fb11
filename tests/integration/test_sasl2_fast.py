"""XEP-0388 SASL2 with Bind2 (XEP-0386) and FAST (XEP-0484), driven by a hand-written client
(slixmpp has none) following the XEPs' examples: a password login that binds inline and gets
a token, then a one-round-trip login with the token, and the token's revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

import pytest

from heron.app import RunningServer
from heron.jid import JID
from tests.rawclient import RawClient

pytestmark = pytest.mark.both_engines  # every store this touches, on each engine

PASSWORD = "sasl2-password"
SASL2 = "urn:xmpp:sasl:2"
NUL = bytes(1)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def open_secure(server: RunningServer) -> tuple[RawClient, str]:
    raw = await RawClient.connect(server.ports["c2s"])
    await raw.starttls(server.certificates["localhost"])
    return raw, await raw.open_stream()


async def scram_login(
    raw: RawClient,
    user: str,
    password: str,
    agent: str,
    fast: str = "HT-SHA-256-NONE",
    extra: str = "",
) -> str:
    """SCRAM-SHA-256 over SASL2 with inline bind and a token request for the FAST mechanism
    ``fast``; returns <success/> (or <failure/>)."""
    nonce = secrets.token_urlsafe(18)
    first_bare = f"n={user},r={nonce}"
    await raw.send(
        f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
        f"<initial-response>{b64(('n,,' + first_bare).encode())}</initial-response>"
        f"<user-agent id='{agent}'><software>Heron tests</software><device>CI</device>"
        "</user-agent><bind xmlns='urn:xmpp:bind:0'><tag>Tests</tag></bind>"
        f"<request-token xmlns='urn:xmpp:fast:0' mechanism='{fast}'/>{extra}</authenticate>"
    )
    challenge_or_failure = await raw.expect(
        rf"<challenge xmlns=.{SASL2}.>([^<]+)</challenge>|<failure xmlns=.{SASL2}.>.*?</failure>"
    )
    if challenge_or_failure[1] is None:
        return challenge_or_failure[0]
    challenge = challenge_or_failure[1]
    server_first = base64.b64decode(challenge).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    final_bare = f"c=biws,r={fields['r']}"
    message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.new(stored, message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    await raw.send(
        f"<response xmlns='{SASL2}'>{b64((final_bare + ',p=' + b64(proof)).encode())}</response>"
    )
    return (await raw.expect(r"<success xmlns=.urn:xmpp:sasl:2.>.*?</success>"))[0]


async def fast_login(
    raw: RawClient,
    user: str,
    token: str,
    agent: str,
    mechanism: str = "HT-SHA-256-NONE",
    cb: bytes = b"",
    extra: str = "",
    fast_attrs: str = "",
) -> str:
    """A HT-* login (draft-schmaus-kitten-sasl-ht): HMAC(token, "Initiator" || cb-data)."""
    proof = hmac.new(token.encode(), b"Initiator" + cb, hashlib.sha256).digest()
    initial = b64(user.encode() + NUL + proof)
    await raw.send(
        f"<authenticate xmlns='{SASL2}' mechanism='{mechanism}'>"
        f"<initial-response>{initial}</initial-response>"
        f"<user-agent id='{agent}'/><bind xmlns='urn:xmpp:bind:0'><tag>Tests</tag></bind>"
        f"<fast xmlns='urn:xmpp:fast:0'{fast_attrs}/>{extra}</authenticate>"
    )
    return (await raw.expect(r"<(success|failure) xmlns=.urn:xmpp:sasl:2.>.*?</\1>"))[0]


async def test_sasl2_bind2_and_fast(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    raw, features = await open_secure(server)
    try:
        assert f'<authentication xmlns="{SASL2}"' in features.replace("'", '"')
        assert "urn:xmpp:bind:0" in features
        assert "HT-SHA-256-NONE" in features

        success = await scram_login(raw, "alice", PASSWORD, "agent-1")
        jid = re.search(r"<authorization-identifier>([^<]+)<", success)
        assert jid is not None
        assert jid[1].startswith("alice@localhost/Tests.")  # bound inline, no restart
        assert "urn:xmpp:bind:0" in success
        token = re.search(r"<token [^>]*token=.([^'\"]+)", success)
        assert token is not None
        assert re.search(r"<additional-data>([^<]+)<", success)  # SCRAM's server signature
        after = await raw.expect(r"<stream:features>.*?</stream:features>")
        assert "urn:ietf:params:xml:ns:xmpp-bind" not in after[0]  # already bound
        await raw.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        await raw.expect(r"<iq [^>]*id=.p1.[^>]*type=.result.|<iq [^>]*type=.result.[^>]*id=.p1.")
    finally:
        raw.close()

    # One round trip with the token; the server proves it knew the token too.
    raw, _ = await open_secure(server)
    try:
        answer = await fast_login(raw, "alice", token[1], "agent-1")
        assert answer.startswith("<success")
        responder = hmac.new(token[1].encode(), b"Responder", hashlib.sha256).digest()
        assert f"<additional-data>{b64(responder)}</additional-data>" in answer
        assert "alice@localhost/Tests." in answer
        await raw.expect(r"</stream:features>")
        # A password change in band revokes every token.
        await raw.send(
            "<iq type='set' id='pw'><query xmlns='jabber:iq:register'><username>alice"
            "</username><password>a-new-long-password</password></query></iq>"
        )
        await raw.expect(r"<iq [^>]*id=.pw.[^>]*type=.result.|<iq [^>]*type=.result.[^>]*id=.pw.")
    finally:
        raw.close()

    for token_value, agent in (
        ("made-up", "agent-1"),  # never issued
        (token[1], "agent-2"),  # another client's
        (token[1], "agent-1"),  # revoked by the password change
    ):
        raw, _ = await open_secure(server)
        try:
            answer = await fast_login(raw, "alice", token_value, agent)
            assert "<not-authorized" in answer, answer
        finally:
            raw.close()
