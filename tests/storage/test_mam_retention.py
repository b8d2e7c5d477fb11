"""The archive's retention finds the first row to keep by binary search over row ids,
on both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.mam.store import SqlArchiveStore, first_row_at_or_after
from heron.storage.db import Database
from tests.engines import ENGINES, open_store_db

STAMPS = [(1, 1.0), (2, 5.0), (7, 10.0), (8, 11.0), (30, 55.0), (31, 56.0), (90, 99.0)]


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_store_db(request.param, tmp_path, request, [SqlArchiveStore])
    try:
        yield opened
    finally:
        await opened.close()


async def fill(db: Database, stamps: list[tuple[int, float]]) -> None:
    await db.executemany(
        "INSERT INTO mam_messages (id, archive_id, domain, username, with_jid, at, xml)"
        " VALUES (?, ?, 'localhost', 'a', 'b@localhost', ?, '<message/>')",
        [(row_id, f"id{row_id}", at) for row_id, at in stamps],
    )


async def test_first_row_to_keep_with_gaps(db: Database) -> None:
    await fill(db, STAMPS)
    for cutoff in (0.0, 5.0, 10.0, 10.5, 55.0, 99.0, 1000.0):
        expected = next((row_id for row_id, at in STAMPS if at >= cutoff), 91)
        assert await first_row_at_or_after(db, cutoff) == expected, cutoff


async def test_expiry_deletes_only_older_rows(db: Database) -> None:
    await fill(db, STAMPS)
    assert await SqlArchiveStore(db).expire(10.5) == 3
    remaining = await db.fetch("SELECT id FROM mam_messages ORDER BY id")
    assert [int(r[0]) for r in remaining] == [8, 30, 31, 90]


async def test_empty_archive(db: Database) -> None:
    assert await first_row_at_or_after(db, 10.0) == 0
    assert await SqlArchiveStore(db).expire(10.0) == 0
