"""PostgreSQL engine: asyncpg's connection pool, fully async.

SQL arrives with ``?`` placeholders (written once for both engines) and is numbered for
PostgreSQL once per distinct text; asyncpg prepares each statement on first use per
connection and keeps it in its statement cache, so repeated statements skip parsing and
planning. ``transaction()`` holds one pooled connection for the block.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from heron.storage.db import (
    RECORD_VERSION,
    Column,
    Dialect,
    Executor,
    Migration,
    Row,
    StorageUnavailable,
    check_migrations,
    numbered,
    pending,
    rowcount,
)

log = logging.getLogger(__name__)

_SCHEMA_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)
# One migration runner at a time across every process sharing the database.
_MIGRATION_LOCK = 0x68657230  # "her0"


@lru_cache(maxsize=2048)
def _pg(sql: str) -> str:
    return numbered(sql)


class _Conn:
    """The Executor over asyncpg's pool or one of its connections (a transaction block):
    both answer the same calls."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        return rowcount(await self._conn.execute(_pg(sql), *args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self._conn.executemany(_pg(sql), list(rows))

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return list(await self._conn.fetch(_pg(sql), *args))

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        row: Row | None = await self._conn.fetchrow(_pg(sql), *args)
        return row

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._conn.fetchval(_pg(sql), *args)


class PostgresDatabase(_Conn):
    """A pool of connections to one PostgreSQL database."""

    dialect: Dialect = "postgresql"

    def __init__(self, pool: Any, where: str) -> None:
        super().__init__(pool)
        self._pool = pool
        self.where = where  # user@host:port/database, for logs (never the password)

    @classmethod
    async def open(
        cls, url: str, pool_size: int = 10, password_file: Path | None = None
    ) -> PostgresDatabase:
        """Connect; `StorageUnavailable` names `storage.url` and the reason when it fails."""
        where = describe(url)
        password = None
        if password_file is not None:
            try:
                password = _read_password(password_file)
            except OSError as exc:
                raise StorageUnavailable(
                    f"storage.password_file: cannot read {password_file}: {exc.strerror}"
                ) from exc
        try:
            pool = await asyncpg.create_pool(
                url,
                password=password,
                min_size=1,
                max_size=pool_size,
                timeout=10,
                command_timeout=60,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StorageUnavailable(f"storage.url: cannot use {where}: {reason}") from exc
        except TimeoutError as exc:
            raise StorageUnavailable(f"storage.url: {where} did not answer in 10 s") from exc
        log.info("opened database postgresql://%s (pool of %d)", where, pool_size)
        return cls(pool, where)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _Conn(conn)

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Sequence[Sequence[object]]
    ) -> None:
        """Bulk append with COPY (the archive's and offline store's batches)."""
        async with self._pool.acquire() as conn:
            await conn.copy_records_to_table(table, records=records, columns=list(columns))

    # --- introspection (heron.storage.db.Introspection, for copy-storage) ---------------
    async def tables(self) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        )
        return [str(row[0]) for row in rows]

    async def columns(self, table: str) -> list[Column]:
        rows = await self._pool.fetch(
            "SELECT c.column_name, c.data_type, COALESCE(k.ordinal_position, 0) "
            "FROM information_schema.columns c "
            "LEFT JOIN information_schema.table_constraints t "
            "  ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "  AND t.constraint_type = 'PRIMARY KEY' "
            "LEFT JOIN information_schema.key_column_usage k "
            "  ON k.constraint_name = t.constraint_name AND k.table_schema = t.table_schema "
            "  AND k.column_name = c.column_name "
            "WHERE c.table_schema = current_schema() AND c.table_name = $1 "
            "ORDER BY c.ordinal_position",
            table,
        )
        return [Column(str(r[0]), str(r[1]).lower(), int(r[2])) for r in rows]

    async def parents(self, table: str) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = $1::regclass",
            table,
        )
        return {str(r[0]).split(".")[-1].strip('"') for r in rows}

    async def after_copy(self, table: str) -> None:
        rows = await self._pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = $1 AND (is_identity = 'YES' OR "
            "column_default LIKE 'nextval%')",
            table,
        )
        for (column,) in rows:
            quoted_table = '"' + table.replace('"', '""') + '"'
            quoted_column = '"' + str(column).replace('"', '""') + '"'
            await self._pool.execute(
                f"SELECT setval(pg_get_serial_sequence($1, $2), "  # noqa: S608 (catalogue names)
                f"COALESCE((SELECT MAX({quoted_column}) FROM {quoted_table}), 0) + 1, false)",
                quoted_table,
                column,
            )

    async def migrate(self, migrations: Sequence[Migration]) -> None:
        grouped = check_migrations(migrations)
        async with self._pool.acquire() as conn:
            # Several nodes may start at once: one migrates, the others wait and see it done.
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(_SCHEMA_VERSIONS)
                for component, steps in grouped.items():
                    await _apply(conn, component, steps)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    async def close(self) -> None:
        await self._pool.close()


async def _apply(conn: Any, component: str, steps: list[Migration]) -> None:
    current = await conn.fetchval(
        "SELECT version FROM schema_versions WHERE component = $1", component
    )
    for step in pending(component, current, steps):
        log.info("migrating %s to version %d", component, step.version)
        async with conn.transaction():
            await conn.execute(step.sql)  # a script: several statements, one transaction
            await conn.execute(_pg(RECORD_VERSION), component, step.version)


def _read_password(path: Path) -> str:
    """Read once at start, before the loop has any other work."""
    with path.open(encoding="utf-8") as f:
        return f.read().strip()


def describe(url: str) -> str:
    """``user@host:port/database`` from a URL, without its password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "(an unreadable URL)"
    user = f"{parts.username}@" if parts.username else ""
    return f"{user}{host}:{port}{parts.path or '/'}"
