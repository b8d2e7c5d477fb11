"""No user enumeration: an unknown user looks exactly like a known one with a wrong password."""

from __future__ import annotations

import base64
import re
import statistics
import time
from collections.abc import Callable

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.rawclient import RawClient


async def scram_attempt(server: RunningServer, user: str) -> tuple[dict[str, str], str]:
    """A SCRAM-SHA-256 exchange with a wrong proof; returns the server-first fields and the
    failure the server sent."""
    raw = await RawClient.connect(server.ports["c2s"])
    try:
        await raw.starttls(server.certificates["localhost"])
        await raw.open_stream()
        first = base64.b64encode(f"n,,n={user},r=clientnonce123".encode()).decode()
        await raw.send(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"
            f"{first}</auth>"
        )
        challenge = (await raw.expect(r"<challenge[^>]*>([^<]+)</challenge>")).group(1)
        fields = dict(
            part.split("=", 1) for part in base64.b64decode(challenge).decode().split(",")
        )
        proof = base64.b64encode(b"\0" * 32).decode()
        final = f"c=biws,r={fields['r']},p={proof}"
        await raw.send(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            f"{base64.b64encode(final.encode()).decode()}</response>"
        )
        failure = (await raw.expect(r"<failure[^>]*>.*?</failure>")).group(0)
        return fields, re.sub(r"\s+", " ", failure)
    finally:
        raw.close()


async def test_unknown_user_is_indistinguishable_in_scram(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("known@localhost"), "the-real-password")
    known, known_failure = await scram_attempt(server, "known")
    unknown, unknown_failure = await scram_attempt(server, "unknown")
    again, _ = await scram_attempt(server, "unknown")
    assert known_failure == unknown_failure
    assert "<not-authorized/>" in unknown_failure
    assert known["i"] == unknown["i"]  # same iteration count
    assert len(base64.b64decode(known["s"])) == len(base64.b64decode(unknown["s"]))
    assert unknown["s"] == again["s"]  # a stable salt: retrying reveals nothing


async def plain_timing(server: RunningServer, user: str) -> tuple[float, str]:
    """One PLAIN attempt with a wrong password: (seconds from <auth> to the answer, answer)."""
    raw = await RawClient.connect(server.ports["c2s"])
    try:
        await raw.starttls(server.certificates["localhost"])
        await raw.open_stream()
        token = base64.b64encode(f"\0{user}\0wrong-password".encode()).decode()
        started = time.perf_counter()
        await raw.send(
            f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        )
        failure = (await raw.expect(r"<failure[^>]*>.*?</failure>")).group(0)
        return time.perf_counter() - started, failure
    finally:
        raw.close()


async def test_unknown_user_costs_the_same_with_plain(
    config_factory: Callable[..., ServerConfig],
) -> None:
    # Login throttling would add its own delays; keep them out of the measurement.
    config = config_factory(limits={"auth_block_after": 1000, "auth_max_delay_s": 0.001})
    running = await start(config)
    try:
        await running.server.accounts.create(JID.parse("known@localhost"), "the-real-password")
        known: list[float] = []
        unknown: list[float] = []
        for _ in range(9):  # interleaved, so load on the machine hits both alike
            took, known_failure = await plain_timing(running, "known")
            known.append(took)
            took, unknown_failure = await plain_timing(running, "nobody")
            unknown.append(took)
        assert known_failure == unknown_failure
        ratio = statistics.median(unknown) / statistics.median(known)
        assert 0.5 < ratio < 2.0, (known, unknown)  # the same PBKDF2 work either way
    finally:
        await running.stop()
