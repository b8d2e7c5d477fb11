"""Opening the same database again, on either engine (restart persistence tests)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from heron.storage.db import Database, SqlStore
from heron.storage.postgres import PostgresDatabase
from heron.storage.sqlite import SqliteDatabase
from tests.engines import fresh_schema_url

Opener = Callable[[], Awaitable[Database]]


def reopenable(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, stores: Sequence[type[SqlStore]]
) -> Opener:
    """A function opening one new database, the same one at every call, migrated for
    ``stores`` (again: migrations must be idempotent across restarts)."""
    if engine == "sqlite":
        path = tmp_path / f"db-{secrets.token_hex(3)}" / "heron.db"

        async def open_sqlite() -> Database:
            return await SqliteDatabase.open(path)

        raw: Opener = open_sqlite
    else:
        url = fresh_schema_url(request)

        async def open_postgresql() -> Database:
            return await PostgresDatabase.open(url, pool_size=2)

        raw = open_postgresql

    async def opener() -> Database:
        db = await raw()
        for store in stores:
            await db.migrate(store.migrations_for(db.dialect))
        return db

    return opener
