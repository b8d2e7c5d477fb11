"""Offline messages (XEP-0160) on both engines: written behind yet counted and read at
once, in order, limited per account, deleted when delivered or when the account goes,
unicode and 64 KiB payloads, kept across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.offline.store import FLUSH_ROWS, SqlOfflineStore
from tests.engines import ENGINES, open_store_db
from tests.storage.durable import reopenable


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlOfflineStore]:
    db = await open_store_db(request.param, tmp_path, request, [SqlOfflineStore])
    made = SqlOfflineStore(db)
    try:
        yield made
    finally:
        await made.close()
        await db.close()


def msg(n: int | str) -> str:
    return f"<message xmlns='jabber:client' to='u@h'><body>{n}</body></message>"


async def test_messages_come_back_in_order_and_go_when_delivered(store: SqlOfflineStore) -> None:
    for n in range(5):
        assert await store.add("u", "h", msg(n), 100)
    assert await store.count("u", "h") == 5  # still queued, already counted
    rows = await store.fetch("u", "h")
    assert [xml for _, xml in rows] == [msg(n) for n in range(5)]
    assert [i for i, _ in rows] == sorted(i for i, _ in rows)
    await store.delete([i for i, _ in rows[:3]])
    assert [xml for _, xml in await store.fetch("u", "h")] == [msg(3), msg(4)]
    assert await store.fetch("other", "h") == []


async def test_the_limit_counts_queued_and_stored_messages(store: SqlOfflineStore) -> None:
    assert await store.add("u", "h", msg(1), 2)
    await store.fetch("u", "h")  # the first is stored now
    assert await store.add("u", "h", msg(2), 2)  # the second stays queued
    assert not await store.add("u", "h", msg(3), 2)
    assert await store.add("v", "h", msg(3), 2)  # another account has its own limit
    assert [xml for _, xml in await store.fetch("u", "h")] == [msg(1), msg(2)]


async def test_unicode_and_64_kib_payloads(store: SqlOfflineStore) -> None:
    big = msg("ü🐦" * 16384 + "x" * 65536)
    await store.add("ünï", "h", big, 10)
    await store.add("ünï", "h", msg("家"), 10)
    assert [xml for _, xml in await store.fetch("ünï", "h")] == [big, msg("家")]


async def test_two_writers_at_once_and_full_batches(store: SqlOfflineStore) -> None:
    async def writer(name: str) -> None:
        for n in range(FLUSH_ROWS + 10):
            assert await store.add(name, "h", msg(n), 10_000)

    await asyncio.gather(writer("a"), writer("b"))
    for name in ("a", "b"):
        rows = await store.fetch(name, "h")
        assert [xml for _, xml in rows] == [msg(n) for n in range(FLUSH_ROWS + 10)]


async def test_removing_an_account_forgets_its_messages(store: SqlOfflineStore) -> None:
    await store.add("gone", "h", msg(1), 10)
    await store.fetch("gone", "h")
    await store.add("gone", "h", msg(2), 10)  # queued
    await store.add("stays", "h", msg(3), 10)
    await store.forget("gone", "h")
    assert await store.fetch("gone", "h") == []
    assert await store.count("gone", "h") == 0
    assert [xml for _, xml in await store.fetch("stays", "h")] == [msg(3)]


@pytest.mark.parametrize("engine", ENGINES)
async def test_queued_messages_are_written_on_close_and_survive(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    opener = reopenable(engine, tmp_path, request, [SqlOfflineStore])
    db = await opener()
    store = SqlOfflineStore(db)
    await store.add("u", "h", msg("kept"), 10)
    await store.close()
    await db.close()
    db = await opener()
    try:
        assert [xml for _, xml in await SqlOfflineStore(db).fetch("u", "h")] == [msg("kept")]
    finally:
        await db.close()
