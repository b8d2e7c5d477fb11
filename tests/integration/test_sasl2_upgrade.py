"""SASL upgrade tasks (XEP-0480) with SCRAM: an account that lacks SCRAM-SHA-512 keys (made
elsewhere, or before that hash was stored) gets them from a client that asks, without the
password ever crossing the wire, and SCRAM-SHA-512 logins work from then on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.test_sasl2_fast import PASSWORD, SASL2, b64, open_secure
from tests.rawclient import RawClient

UPGRADE = "urn:xmpp:sasl:upgrade:0"
SCRAM_UPGRADE = "urn:xmpp:scram-upgrade:0"


async def scram(
    raw: RawClient, user: str, password: str, hash_name: str, extra: str = ""
) -> tuple[str, bytes]:
    """A SCRAM-<hash> exchange over SASL2; what the server said after the client's proof,
    and the server signature it should carry."""
    name = hash_name.replace("-", "").lower()
    nonce = secrets.token_urlsafe(18)
    first_bare = f"n={user},r={nonce}"
    await raw.send(
        f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-{hash_name}'>"
        f"<initial-response>{b64(('n,,' + first_bare).encode())}</initial-response>"
        f"<user-agent id='phone'/>{extra}</authenticate>"
    )
    reply = await raw.expect(
        rf"<challenge xmlns=.{SASL2}.>([^<]+)</challenge>|<failure xmlns=.{SASL2}.>.*?</failure>"
    )
    if reply[1] is None:
        return reply[0], b""
    server_first = base64.b64decode(reply[1]).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.new(salted, b"Client Key", name).digest()
    final_bare = f"c=biws,r={fields['r']}"
    message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.new(hashlib.new(name, client_key).digest(), message, name).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    await raw.send(
        f"<response xmlns='{SASL2}'>{b64((final_bare + ',p=' + b64(proof)).encode())}</response>"
    )
    server_key = hmac.new(salted, b"Server Key", name).digest()
    verifier = hmac.new(server_key, message, name).digest()
    outcome = await raw.expect(rf"<(success|failure|continue) xmlns=.{SASL2}.>.*?</\1>")
    return outcome[0], b"v=" + base64.b64encode(verifier)


async def forget_sha512(server: RunningServer, user: str) -> None:
    store = server.server.accounts.store
    keys = await store.get_keys(user, "localhost")
    assert keys is not None
    del keys["SHA-512"]
    await store.set_keys(user, "localhost", list(keys.values()))


async def test_client_upgrades_its_account_to_scram_sha_512(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("gina@localhost"), PASSWORD)
    await forget_sha512(server, "gina")
    raw, features = await open_secure(server)
    try:
        assert f'<upgrade xmlns="{UPGRADE}">UPGR-SCRAM-SHA-512</upgrade>' in features.replace(
            "'", '"'
        )
        outcome, _ = await scram(raw, "gina", PASSWORD, "SHA-512")
        assert "<not-authorized" in outcome  # no SHA-512 keys yet
    finally:
        raw.close()

    raw, _ = await open_secure(server)
    try:
        ask = f"<upgrade xmlns='{UPGRADE}'>UPGR-SCRAM-SHA-512</upgrade>"
        outcome, verifier = await scram(raw, "gina", PASSWORD, "SHA-256", ask)
        # XEP-0480 §3.2: authenticated, then exactly the one task asked for.
        assert outcome.startswith("<continue"), outcome
        assert re.search(r"<tasks><task>UPGR-SCRAM-SHA-512</task></tasks>", outcome)
        assert f"<additional-data>{b64(verifier)}</additional-data>" in outcome
        await raw.send(f"<next xmlns='{SASL2}' task='UPGR-SCRAM-SHA-512'/>")
        data = await raw.expect(
            r"<salt xmlns=.urn:xmpp:scram-upgrade:0. iterations=.(\d+).>([^<]+)<"
        )
        salted = hashlib.pbkdf2_hmac(
            "sha512", PASSWORD.encode(), base64.b64decode(data[2]), int(data[1])
        )
        await raw.send(
            f"<task-data xmlns='{SASL2}'><hash xmlns='{SCRAM_UPGRADE}'>{b64(salted)}</hash>"
            "</task-data>"
        )
        success = await raw.expect(rf"<success xmlns=.{SASL2}.>.*?</success>")
        assert "<authorization-identifier>gina@localhost" in success[0]
    finally:
        raw.close()

    raw, _ = await open_secure(server)
    try:
        outcome, verifier = await scram(raw, "gina", PASSWORD, "SHA-512")
        assert outcome.startswith("<success"), outcome
        assert f"<additional-data>{b64(verifier)}</additional-data>" in outcome
    finally:
        raw.close()


async def test_upgrade_tasks_not_offered_or_malformed_fail(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("hal@localhost"), PASSWORD)
    await forget_sha512(server, "hal")
    raw, _ = await open_secure(server)
    try:
        # XEP-0388 §2.3: a task the server did not announce fails the authentication.
        ask = f"<upgrade xmlns='{UPGRADE}'>UPGR-BLOOP2</upgrade>"
        outcome, _ = await scram(raw, "hal", PASSWORD, "SHA-256", ask)
        assert "<invalid-mechanism" in outcome, outcome
        ask = f"<upgrade xmlns='{UPGRADE}'>UPGR-SCRAM-SHA-512</upgrade>"
        outcome, _ = await scram(raw, "hal", PASSWORD, "SHA-256", ask)
        assert outcome.startswith("<continue"), outcome
        await raw.send(f"<next xmlns='{SASL2}' task='UPGR-SCRAM-SHA-512'/>")
        await raw.expect(r"</task-data>")
        short = b64(b"too short")
        await raw.send(
            f"<task-data xmlns='{SASL2}'><hash xmlns='{SCRAM_UPGRADE}'>{short}</hash></task-data>"
        )
        failure = await raw.expect(rf"<failure xmlns=.{SASL2}.>.*?</failure>")
        assert "<malformed-request" in failure[0]
    finally:
        raw.close()
    keys = await server.server.accounts.store.get_keys("hal", "localhost")
    assert keys is not None
    assert "SHA-512" not in keys  # nothing stored from the failed task
