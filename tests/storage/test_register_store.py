"""The invitation store (XEP-0445 tokens from `heron invite`) on both engines: valid for
its host until it expires or is used up, uses spent and given back, only the hash kept,
dead invitations cleared when a new one is made, kept across a restart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.register.store import SqlInvitationStore, token_hash
from heron.storage.db import Database
from tests.engines import ENGINES
from tests.storage.owned import place, reopen

LATER = time.time() + 3600


@pytest.fixture(params=ENGINES)
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return place(request.param, tmp_path, request)


@pytest.fixture
async def db(where: str) -> AsyncIterator[Database]:
    database = await reopen(where, [SqlInvitationStore])
    try:
        yield database
    finally:
        await database.close()


async def test_uses_are_spent_and_given_back(db: Database) -> None:
    store = SqlInvitationStore(db)
    token = await store.create("example.org", 2, LATER)
    now = time.time()
    assert await store.is_valid(token, "example.org", now)
    assert not await store.is_valid(token, "example.net", now)  # another host's
    assert not await store.is_valid("made-up", "example.org", now)
    assert await store.spend(token)
    assert await store.spend(token)
    assert not await store.spend(token)  # used up
    assert not await store.is_valid(token, "example.org", now)
    await store.give_back(token)  # the account was not made after all
    assert await store.is_valid(token, "example.org", now)
    with pytest.raises(ValueError, match="at least one"):
        await store.create("example.org", 0, LATER)


async def test_expiry_and_only_the_hash_is_kept(db: Database) -> None:
    store = SqlInvitationStore(db)
    token = await store.create("example.org", 1, LATER)
    assert not await store.is_valid(token, "example.org", LATER + 1)
    rows = await db.fetch("SELECT token_hash FROM invitations")
    assert [row[0] for row in rows] == [token_hash(token)]
    assert token not in str(rows)


async def test_dead_invitations_are_cleared_by_the_next(db: Database) -> None:
    store = SqlInvitationStore(db)
    expired = await store.create("example.org", 1, time.time() - 1)
    used = await store.create("example.org", 1, LATER)
    assert await store.spend(used)
    live = await store.create("例え.jp", 3, LATER)
    rows = await db.fetch("SELECT token_hash, domain, uses_left FROM invitations")
    assert [tuple(row) for row in rows] == [(token_hash(live), "例え.jp", 3)]
    assert not await store.is_valid(expired, "example.org", time.time())


async def test_kept_across_a_restart(db: Database, where: str) -> None:
    token = await SqlInvitationStore(db).create("example.org", 1, LATER)
    await db.close()
    again = await reopen(where, [SqlInvitationStore])
    try:
        assert await SqlInvitationStore(again).is_valid(token, "example.org", time.time())
    finally:
        await again.close()
