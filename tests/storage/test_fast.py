"""FAST token storage: two slots per client, nothing stored that logs anyone in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.storage.fast import MECHANISM, FastTokenStore, proofs
from heron.storage.sqlite import SqliteDatabase
from tests.engines import ENGINES, open_store_db


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FastTokenStore]:
    db = await open_store_db(request.param, tmp_path, request, [FastTokenStore])
    try:
        yield FastTokenStore(db)
    finally:
        await db.close()


async def test_tokens_rotate_through_two_slots(store: FastTokenStore) -> None:
    first, _ = await store.issue("u", "h", "phone")
    initiator, responder = proofs(first)
    found = await store.verify("u", "h", "phone", MECHANISM, initiator)
    assert found is not None
    assert found[0] == responder
    second, _ = await store.issue("u", "h", "phone")  # waits in "new"; "current" still works
    assert await store.verify("u", "h", "phone", MECHANISM, initiator) is not None
    assert await store.verify("u", "h", "phone", MECHANISM, proofs(second)[0]) is not None
    # Using the new one retires the old one.
    assert await store.verify("u", "h", "phone", MECHANISM, initiator) is None
    assert await store.verify("u", "h", "laptop", MECHANISM, proofs(second)[0]) is None
    assert await store.verify("u", "h", "phone", "HT-SHA-256-ENDP", proofs(second)[0]) is None


async def test_nothing_stored_logs_in_and_revocation(store: FastTokenStore) -> None:
    token, _ = await store.issue("u", "h", "phone")

    stored = await store.db.fetch("SELECT proof_hash, responder FROM fast_tokens")
    initiator, _ = proofs(token)
    assert all(token.encode() not in bytes(p) + bytes(r) for p, r in stored)
    assert all(bytes(p) != initiator for p, _r in stored)  # only a hash of the proof
    await store.revoke("u", "h")
    assert await store.verify("u", "h", "phone", MECHANISM, initiator) is None


async def test_expired_tokens_fail(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "x.db")
    await db.migrate(FastTokenStore.migrations_for("sqlite"))
    try:
        short = FastTokenStore(db, lifetime_s=-1.0)
        token, _ = await short.issue("u", "h", "phone")
        assert await short.verify("u", "h", "phone", MECHANISM, proofs(token)[0]) is None
    finally:
        await db.close()


async def test_channel_bound_tokens_keep_only_a_seed(store: FastTokenStore) -> None:
    """HT-SHA-256-ENDP proofs hash in the TLS session's data, so the server rebuilds the
    token from a stored seed and its own key; the table alone rebuilds nothing."""
    key, cb = b"k" * 32, b"end-point-data"
    token, _ = await store.issue("u", "h", "phone", "HT-SHA-256-ENDP", key)
    initiator, responder = proofs(token, cb)
    assert (
        await store.verify("u", "h", "phone", "HT-SHA-256-ENDP", initiator, cb, b"x" * 32) is None
    )
    wrong_cb = proofs(token, b"other-certificate")[0]
    assert await store.verify("u", "h", "phone", "HT-SHA-256-ENDP", wrong_cb, cb, key) is None
    assert await store.verify("u", "h", "phone", MECHANISM, proofs(token)[0], b"", key) is None
    found = await store.verify("u", "h", "phone", "HT-SHA-256-ENDP", initiator, cb, key)
    assert found is not None
    assert found[0] == responder
    (seed,) = await store.db.fetchrow("SELECT seed FROM fast_tokens")
    assert token.encode() not in bytes(seed)
