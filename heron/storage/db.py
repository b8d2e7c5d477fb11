"""The engine-neutral database interface every store is written against.

A store writes its SQL once, with ``?`` placeholders, in the subset SQLite and PostgreSQL
share (``INSERT … ON CONFLICT``, ``RETURNING``, ``LIMIT``/``OFFSET``, ``||``); the
PostgreSQL engine numbers the placeholders. Where the dialects truly differ (column types,
``WITHOUT ROWID``, identity columns) the difference lives in each engine's migrations, which
a store declares per dialect (`ddl` writes one schema text for both). Modules never import
an engine or a driver: they receive their stores from the module context.

Rows come back as sequences indexed by column position (``tuple`` from SQLite, ``Record``
from asyncpg). Integers, text, bytes and floats round-trip the same on both engines;
booleans are stored as integers 0/1 so ``bool(row[i])`` reads them on either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]
DIALECTS: Final[tuple[Dialect, ...]] = ("sqlite", "postgresql")

Row = Sequence[Any]

_DDL: Final[Mapping[Dialect, Mapping[str, str]]] = {
    "sqlite": {"blob": "BLOB", "real": "REAL", "bigint": "INTEGER", "rowid": " WITHOUT ROWID"},
    "postgresql": {"blob": "BYTEA", "real": "DOUBLE PRECISION", "bigint": "BIGINT", "rowid": ""},
}


def ddl(dialect: Dialect, template: str) -> str:
    """A schema text for ``dialect`` from one written for both: ``{blob}``, ``{real}`` and
    ``{bigint}`` are the column types, ``{rowid}`` follows a table that needs no row id
    (``WITHOUT ROWID`` on SQLite)."""
    return template.format_map(_DDL[dialect])


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step of one component (``accounts``, ``roster`` …); versions start at 1.

    A migration that has shipped is never edited: fix forward with a new version.
    """

    component: str
    version: int
    sql: str


class MigrationError(Exception):
    """The migration list is inconsistent, or the database is newer than this code."""


class StorageUnavailable(Exception):
    """The configured database cannot be opened (bad URL, unreachable, refused login);
    the message names the configuration key and the reason, for one line on the console."""


class Executor(Protocol):
    """What one can run statements on: the database, or one transaction of it."""

    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run one statement for each parameter row (one round trip where the engine can)."""
        ...

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...

    async def fetchval(self, sql: str, *args: object) -> Any:
        """The first column of the first row, or None when there is no row."""
        ...


class Database(Executor, Protocol):
    """One open database. Statements outside ``transaction()`` commit on their own."""

    dialect: Dialect

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """Statements that succeed or fail together: committed when the block ends,
        rolled back when it raises."""
        ...

    async def migrate(self, migrations: Sequence[Migration]) -> None:
        """Apply, per component, the migrations newer than the recorded version."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # the engine's own type name, lower case (integer, text, bytea, blob …)
    primary_key: int  # position in the primary key (1, 2 …), 0 when not part of it


class Introspection(Protocol):
    """What `heron copy-storage` asks of an engine about its schema."""

    async def tables(self) -> list[str]:
        """The tables of the schema, without the engine's own."""
        ...

    async def columns(self, table: str) -> list[Column]: ...

    async def parents(self, table: str) -> set[str]:
        """The tables ``table``'s foreign keys point to."""
        ...

    async def after_copy(self, table: str) -> None:
        """Bring the table's generated keys past the rows copied in (identity columns)."""
        ...


class SqlStore:
    """Base of the stores written against `Database`: they declare their schema per dialect.

    The server applies ``MIGRATIONS[db.dialect]`` of every store an enabled module declares
    before any module starts (and ``heron migrate`` applies them without starting).
    """

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {}

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def migrations_for(cls, dialect: Dialect) -> Sequence[Migration]:
        steps = cls.MIGRATIONS.get(dialect)
        if steps is None:
            raise MigrationError(f"{cls.__name__} has no schema for the {dialect} engine")
        return steps


def check_migrations(migrations: Sequence[Migration]) -> dict[str, list[Migration]]:
    """Group by component in version order; refuse duplicate or non-positive versions."""
    by_component: dict[str, list[Migration]] = {}
    for migration in migrations:
        by_component.setdefault(migration.component, []).append(migration)
    for component, steps in by_component.items():
        steps.sort(key=lambda m: m.version)
        versions = [m.version for m in steps]
        if len(set(versions)) != len(versions) or versions[0] < 1:
            raise MigrationError(f"{component}: migration versions must be unique and ≥ 1")
    return by_component


RECORD_VERSION: Final = (
    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
    "ON CONFLICT (component) DO UPDATE SET version = excluded.version"
)


def pending(component: str, current: int | None, steps: Sequence[Migration]) -> list[Migration]:
    """The steps newer than the recorded version; refuses a database newer than the code."""
    have = 0 if current is None else int(current)
    latest = steps[-1].version
    if have > latest:
        raise MigrationError(
            f"{component}: database schema version {have} is newer than this code ({latest})"
        )
    return [step for step in steps if step.version > have]


def rowcount(status: str) -> int:
    """The row count in a PostgreSQL command tag (``UPDATE 3``, ``INSERT 0 1``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2 …``, leaving quoted text alone."""
    out: list[str] = []
    n = 0
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)
