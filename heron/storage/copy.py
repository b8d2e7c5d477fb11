"""Copy a whole deployment's data from one database to another (`heron copy-storage`).

Both schemas come from the same stores, so tables and columns have the same names on
every engine; the copy goes table by table, parents before the tables whose foreign keys
point at them, in pages, each page one transaction on the target. Values are converted to
the target column's type where the engines store them differently (a SQLite BLOB holding
text, an integer in a REAL column). The source is only read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from heron.storage.db import Column, Database, Introspection

log = logging.getLogger(__name__)

PAGE = 2000
_OWN = {"schema_versions"}  # each engine's migrations fill their own


class Engine(Database, Introspection, Protocol):
    """A database that can also describe its schema (both engines are)."""


class TargetNotEmpty(Exception):
    """The target already holds data; copying would mix two deployments."""


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)
    """Rows copied, by table."""
    skipped: list[str] = field(default_factory=list)
    """Source tables the target has no schema for (a module not enabled there)."""


async def copy_storage(source: Engine, target: Engine, *, force: bool = False) -> CopyReport:
    """Copy every table the target's schema has; the target must be migrated already."""
    source_tables = set(await source.tables()) - _OWN
    target_tables = set(await target.tables()) - _OWN
    common = source_tables & target_tables
    ordered = await _parents_first(target, sorted(target_tables))
    # Table and column names below come from the databases' own catalogues, quoted.
    nonempty = [t for t in ordered if await _count(target, t)]
    if nonempty and not force:
        raise TargetNotEmpty(
            f"the target already has data ({', '.join(nonempty)}); use --force to replace it"
        )
    for table in reversed(ordered):  # children first, so no foreign key is left dangling
        if table in nonempty:
            await target.execute(f"DELETE FROM {_q(table)}")  # noqa: S608
    report = CopyReport(skipped=sorted(source_tables - target_tables))
    for table in ordered:
        if table in common:
            report.rows[table] = await _copy_table(source, target, table)
            await target.after_copy(table)
    return report


async def _count(db: Database, table: str) -> int:
    return int(await db.fetchval(f"SELECT COUNT(*) FROM {_q(table)}"))  # noqa: S608


async def _parents_first(db: Introspection, tables: list[str]) -> list[str]:
    parents = {t: (await db.parents(t)) & set(tables) - {t} for t in tables}
    ordered: list[str] = []
    placed: set[str] = set()
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in placed and parents[t] <= placed]
        if not ready:  # a cycle: keep the remaining order (constraints will say if wrong)
            ready = [t for t in tables if t not in placed]
        for t in ready:
            ordered.append(t)
            placed.add(t)
    return ordered


async def _copy_table(source: Engine, target: Engine, table: str) -> int:
    source_columns = {c.name for c in await source.columns(table)}
    columns = [c for c in await target.columns(table) if c.name in source_columns]
    if not columns:
        return 0
    names = ", ".join(_q(c.name) for c in columns)
    key = [c for c in columns if c.primary_key] or columns
    order = ", ".join(_q(c.name) for c in sorted(key, key=lambda c: c.primary_key))
    marks = ", ".join("?" for _ in columns)
    insert = f"INSERT INTO {_q(table)} ({names}) VALUES ({marks})"  # noqa: S608
    convert = [_converter(c) for c in columns]
    copied = 0
    while True:
        rows = await source.fetch(
            f"SELECT {names} FROM {_q(table)} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
            PAGE,
            copied,
        )
        if not rows:
            break
        batch = [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
        async with target.transaction() as tx:
            await tx.executemany(insert, batch)
        copied += len(rows)
        if len(rows) < PAGE:
            break
    log.info("copied %d rows of %s", copied, table)
    return copied


def _converter(column: Column) -> Callable[[Any], Any]:
    kind = column.type
    if kind in ("bytea", "blob"):
        return _to_bytes
    if kind in ("bigint", "integer", "smallint", "int", "int8", "int4"):
        return _to_int
    if kind in ("double precision", "real", "float", "numeric"):
        return _to_float
    if kind in ("text", "character varying", "varchar"):
        return _to_text
    if kind == "boolean":
        return lambda v: None if v is None else bool(v)
    return lambda v: v


def _to_bytes(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode()
    return None if value is None else bytes(value)


def _to_int(value: Any) -> Any:
    return None if value is None else int(value)


def _to_float(value: Any) -> Any:
    return None if value is None else float(value)


def _to_text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode()
    return None if value is None else str(value)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
