"""Both storage engines for tests: SQLite in a temporary file, PostgreSQL on loopback.

PostgreSQL: one database is created for the whole test run (dropped at its end) and each
test gets a schema of its own in it (`search_path` in the URL), so tests never see each
other's rows. Without a reachable server the PostgreSQL cases skip, or fail when
HERON_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from heron.storage.db import Database, Migration, SqlStore
from heron.storage.postgres import PostgresDatabase
from heron.storage.sqlite import SqliteDatabase

PG_HOST = os.environ.get("HERON_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HERON_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HERON_TEST_PG_USER", "postgres")
ENGINES = ("sqlite", "postgresql")


def admin_url(database: str = "postgres") -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database for this test run; its URL. Skips (or fails in CI) without PostgreSQL."""
    from tests.conftest import need_service

    need_service("PostgreSQL", PG_HOST, PG_PORT)
    import asyncpg

    name = f"heron_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def admin(sql: str) -> None:
        # A thread of its own: the fixture may first be asked for inside a running loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, run(sql)).result()

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url(name)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_schema_url(request: pytest.FixtureRequest) -> str:
    """A URL of the run's database whose search_path is a new, empty schema (for a whole
    server's config; usable from sync and async tests alike)."""
    import asyncpg

    base: str = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(6)}"

    async def make() -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, make()).result()
    return f"{base}?search_path={schema}"


async def open_engine(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """A new, empty database on `engine`."""
    if engine == "sqlite":
        return await SqliteDatabase.open(tmp_path / f"db-{secrets.token_hex(3)}" / "heron.db")
    import asyncpg

    base: str = request.getfixturevalue("pg_database")
    schema = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    return await PostgresDatabase.open(f"{base}?search_path={schema}", pool_size=4)


async def open_store_db(
    engine: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    stores: Sequence[type[SqlStore]] = (),
    extra: Sequence[Migration] = (),
) -> Database:
    """A new database with the schema of `stores` (and `extra` migrations) applied."""
    db = await open_engine(engine, tmp_path, request)
    for store in stores:
        await db.migrate(store.migrations_for(db.dialect))
    if extra:
        await db.migrate(extra)
    return db


@pytest.fixture(params=ENGINES)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database, once per engine."""
    db = await open_engine(request.param, tmp_path, request)
    try:
        yield db
    finally:
        await db.close()
