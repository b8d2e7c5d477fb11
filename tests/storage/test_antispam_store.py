"""The quarantine store (antispam ``strangers = quarantine``) on both engines: held in
order, released per sender, trimmed to the per-account limit, unicode and 64 KiB stanzas,
gone with the account, kept across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.jid import JID
from heron.modules.antispam import SqlQuarantineStore
from heron.storage.db import Database
from tests.engines import ENGINES
from tests.storage.owned import ALICE, BIG, BOB, add_accounts, delete_account, place, reopen

EVE = JID.parse("eve@example.net")
MALLORY = JID.parse("mallory@example.net")


@pytest.fixture(params=ENGINES)
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return place(request.param, tmp_path, request)


@pytest.fixture
async def db(where: str) -> AsyncIterator[Database]:
    database = await reopen(where, [SqlQuarantineStore])
    await add_accounts(database, ALICE, BOB)
    try:
        yield database
    finally:
        await database.close()


def message(n: int, body: str = "hi") -> str:
    return f"<message xmlns='jabber:client' id='{n}'><body>{body}</body></message>"


async def test_held_then_released_per_sender_in_order(db: Database) -> None:
    store = SqlQuarantineStore(db)
    for n, sender in enumerate((EVE, MALLORY, EVE)):
        await store.hold(ALICE, sender, 10.0 + n, message(n), limit=10)
    await store.hold(BOB, EVE, 20.0, message(9), limit=10)
    held = await store.held("example.org")
    assert [(h.username, h.sender, h.at) for h in held] == [
        ("alice", str(EVE), 10.0),
        ("alice", str(MALLORY), 11.0),
        ("alice", str(EVE), 12.0),
        ("bob", str(EVE), 20.0),
    ]
    assert await store.release(ALICE, EVE) == [message(0), message(2)]
    assert await store.release(ALICE, EVE) == []  # released once
    assert [h.sender for h in await store.held("example.org")] == [str(MALLORY), str(EVE)]
    assert await store.held("example.net") == []


async def test_past_the_limit_the_oldest_go(db: Database) -> None:
    store = SqlQuarantineStore(db)
    for n in range(5):
        await store.hold(ALICE, EVE, float(n), message(n), limit=3)
    await store.hold(BOB, EVE, 9.0, message(9), limit=3)  # another account's room is its own
    assert await store.release(ALICE, EVE) == [message(2), message(3), message(4)]
    assert await store.release(BOB, EVE) == [message(9)]


async def test_unicode_and_64_kib_stanzas(db: Database) -> None:
    store = SqlQuarantineStore(db)
    sender = JID.parse("ü@例え.jp")
    await store.hold(ALICE, sender, 1.0, message(1, BIG), limit=10)
    await store.hold(ALICE, sender, 2.0, message(2, "鷺 🐦"), limit=10)
    assert await store.release(ALICE, sender) == [message(1, BIG), message(2, "鷺 🐦")]


async def test_held_stanzas_go_with_the_account(db: Database) -> None:
    store = SqlQuarantineStore(db)
    await store.hold(ALICE, EVE, 1.0, message(1), limit=10)
    await store.hold(BOB, EVE, 2.0, message(2), limit=10)
    await delete_account(db, ALICE)
    assert [h.username for h in await store.held("example.org")] == ["bob"]


async def test_kept_across_a_restart(db: Database, where: str) -> None:
    await SqlQuarantineStore(db).hold(ALICE, EVE, 1.0, message(1), limit=10)
    await db.close()
    again = await reopen(where, [SqlQuarantineStore])
    try:
        store = SqlQuarantineStore(again)
        await store.hold(ALICE, EVE, 2.0, message(2), limit=10)
        assert await store.release(ALICE, EVE) == [message(1), message(2)]
    finally:
        await again.close()
