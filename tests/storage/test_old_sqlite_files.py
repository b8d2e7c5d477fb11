"""SQLite files written before these stores existed still open: the modules' own tables
(their migrations up to the one adding the account key) are rebuilt with it, the rows of
existing accounts kept, those of accounts deleted back then (when nothing cascaded)
dropped, and from then on deleting an account takes its rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from heron.modules.antispam import SqlQuarantineStore
from heron.modules.blocking.store import SqlBlockingStore
from heron.modules.push import SqlPushStore
from heron.storage.accounts import SqlAccountStore
from heron.storage.db import SqlStore
from heron.storage.sqlite import SqliteDatabase
from tests.storage.owned import ALICE, add_accounts, delete_account, reopen

CASES = [
    # store, versions the module made, table, columns after domain and username, values
    (SqlBlockingStore, 2, "blocklist", "blocked", ("eve@example.net",)),
    (SqlQuarantineStore, 1, "quarantine", "sender, at, xml", ("eve@x", 1.0, "<message/>")),
    (SqlPushStore, 1, "push_registrations", "service, node, options", ("push.x", "n", None)),
]


@pytest.mark.parametrize(("store", "made", "table", "columns", "values"), CASES)
async def test_module_tables_gain_the_account_key(
    tmp_path: Path,
    store: type[SqlStore],
    made: int,
    table: str,
    columns: str,
    values: tuple[object, ...],
) -> None:
    path = tmp_path / "old.db"
    db = await SqliteDatabase.open(path)
    try:
        await db.migrate(SqlAccountStore.migrations_for("sqlite"))
        await db.migrate(store.migrations_for("sqlite")[:made])
        await add_accounts(db, ALICE)
        marks = ", ".join("?" for _ in range(2 + len(values)))
        for user in ("alice", "gone"):
            await db.execute(
                f"INSERT INTO {table} (domain, username, {columns}) VALUES ({marks})",  # noqa: S608
                "example.org",
                user,
                *values,
            )
    finally:
        await db.close()
    again = await reopen(str(path), [store])
    try:
        rows = await again.fetch(f"SELECT username FROM {table}")  # noqa: S608
        assert [row[0] for row in rows] == ["alice"]
        await delete_account(again, ALICE)
        assert await again.fetchval(f"SELECT COUNT(*) FROM {table}") == 0  # noqa: S608
    finally:
        await again.close()
