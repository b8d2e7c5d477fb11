"""Helpers for the stores whose rows belong to accounts: a database on either engine that
can be closed and opened again (restart persistence), with the accounts' schema and a few
accounts in it, since such rows point at their account."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

import pytest

from heron.jid import JID
from heron.storage.accounts import SqlAccountStore
from heron.storage.db import Database, SqlStore
from heron.storage.postgres import PostgresDatabase
from heron.storage.sqlite import SqliteDatabase
from tests.engines import fresh_schema_url

ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")
CAROL = JID.parse("carol@example.net")
BIG = "ü" * 32768  # 64 KiB of UTF-8


def place(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a new, empty database lives: a file for SQLite, a fresh schema's URL for
    PostgreSQL."""
    if engine == "sqlite":
        return str(tmp_path / f"db-{secrets.token_hex(3)}" / "heron.db")
    return fresh_schema_url(request)


async def reopen(where: str, stores: Sequence[type[SqlStore]]) -> Database:
    """Open the database at ``where`` with the schema of the accounts and ``stores``."""
    if where.startswith("postgresql://"):
        db: Database = await PostgresDatabase.open(where, pool_size=4)
    else:
        db = await SqliteDatabase.open(Path(where))
    for store in (SqlAccountStore, *stores):
        await db.migrate(store.migrations_for(db.dialect))
    return db


async def add_accounts(db: Database, *accounts: JID) -> None:
    for account in accounts:
        await SqlAccountStore(db).create(account.local or "", account.domain, [])


async def delete_account(db: Database, account: JID) -> None:
    await SqlAccountStore(db).delete(account.local or "", account.domain)
