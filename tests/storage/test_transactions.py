"""`Database.transaction()` on both engines: what a block wrote is kept when it ends and
undone when it raises (SQLite once committed each statement on its own)."""

from __future__ import annotations

import pytest

from heron.storage.batch import BulkCopy, append_rows
from heron.storage.db import Database
from tests.engines import database  # noqa: F401 (the fixture, once per engine)


async def change_then_raise(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t (a) VALUES (?)", 2)
        await tx.executemany("INSERT INTO t (a) VALUES (?)", [(3,), (4,)])
        assert await tx.fetchval("SELECT COUNT(*) FROM t") == 4  # seen inside
        raise RuntimeError("changed my mind")


async def change_then_fail(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t (a) VALUES (?)", 5)
        await tx.execute("INSERT INTO t (a) VALUES (?)", 1)  # a duplicate key


async def test_a_block_that_raises_leaves_nothing(database: Database) -> None:  # noqa: F811
    await database.execute("CREATE TABLE t (a INTEGER PRIMARY KEY)")
    async with database.transaction() as tx:
        await tx.execute("INSERT INTO t (a) VALUES (?)", 1)
    with pytest.raises(RuntimeError):
        await change_then_raise(database)
    with pytest.raises(Exception):  # noqa: B017, PT011 (each engine raises its own error)
        await change_then_fail(database)
    assert [row[0] for row in await database.fetch("SELECT a FROM t ORDER BY a")] == [1]


async def test_a_batch_appends_all_its_rows_or_none(database: Database) -> None:  # noqa: F811
    """append_rows (the write-behind batches): one call per batch on either engine."""
    assert isinstance(database, BulkCopy)
    await database.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)")
    await append_rows(database, "t", ("a", "b"), [(1, "x"), (2, "y")])
    with pytest.raises(Exception):  # noqa: B017, PT011 (each engine raises its own error)
        await append_rows(database, "t", ("a", "b"), [(3, "z"), (1, "again")])
    rows = await database.fetch("SELECT a, b FROM t ORDER BY a")
    assert [tuple(row) for row in rows] == [(1, "x"), (2, "y")]
    await append_rows(database, "t", ("a", "b"), [(3, "z")])  # the connection is usable
    assert await database.fetchval("SELECT COUNT(*) FROM t") == 3
