"""The account store's behaviour, run on every backend, plus SQLite's own guarantees."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.credentials import ScramKeys
from heron.storage.accounts import (
    AccountStore,
    MemoryAccountStore,
    SqlAccountStore,
    UserExists,
    UserNotFound,
)
from heron.storage.sqlite import Migration, MigrationError, SqliteDatabase, transaction
from tests.engines import open_store_db


def keys(hash_name: str = "SHA-256", tag: bytes = b"a") -> ScramKeys:
    size = {"SHA-1": 20, "SHA-256": 32, "SHA-512": 64}[hash_name]
    return ScramKeys(
        hash_name=hash_name,
        salt=b"salt-" + tag,
        iterations=4096,
        stored_key=(tag * size)[:size],
        server_key=(tag.upper() * size)[:size],
    )


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AccountStore]:
    if request.param == "memory":
        yield MemoryAccountStore()
        return
    db = await open_store_db(request.param, tmp_path, request, [SqlAccountStore])
    try:
        yield SqlAccountStore(db)
    finally:
        await db.close()


# --- behaviour, on every backend ------------------------------------------------------------


async def test_create_and_get(store: AccountStore) -> None:
    assert await store.get_keys("alice", "example.org") is None
    assert not await store.exists("alice", "example.org")
    await store.create("alice", "example.org", [keys("SHA-1"), keys("SHA-256")])
    assert await store.exists("alice", "example.org")
    assert not await store.exists("alice", "example.net")
    got = await store.get_keys("alice", "example.org")
    assert got == {"SHA-1": keys("SHA-1"), "SHA-256": keys("SHA-256")}


async def test_create_without_keys(store: AccountStore) -> None:
    await store.create("bob", "example.org", [])
    assert await store.get_keys("bob", "example.org") == {}
    assert await store.exists("bob", "example.org")


async def test_create_twice_raises(store: AccountStore) -> None:
    await store.create("alice", "example.org", [keys()])
    with pytest.raises(UserExists):
        await store.create("alice", "example.org", [keys(tag=b"b")])
    assert await store.get_keys("alice", "example.org") == {"SHA-256": keys()}
    await store.create("alice", "example.net", [keys()])  # same name, other domain


async def test_duplicate_hash_refused(store: AccountStore) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        await store.create("alice", "example.org", [keys(), keys(tag=b"b")])
    assert not await store.exists("alice", "example.org")


async def test_set_keys_replaces_all(store: AccountStore) -> None:
    await store.create("alice", "example.org", [keys("SHA-1"), keys("SHA-256")])
    await store.set_keys("alice", "example.org", [keys("SHA-512", b"z"), keys("SHA-256", b"z")])
    got = await store.get_keys("alice", "example.org")
    assert got == {"SHA-512": keys("SHA-512", b"z"), "SHA-256": keys("SHA-256", b"z")}


async def test_set_keys_is_atomic(store: AccountStore) -> None:
    await store.create("alice", "example.org", [keys()])
    with pytest.raises(ValueError, match="SHA-1"):
        await store.set_keys("alice", "example.org", [keys("SHA-1"), keys("SHA-1", b"b")])
    assert await store.get_keys("alice", "example.org") == {"SHA-256": keys()}


async def test_set_keys_unknown_user(store: AccountStore) -> None:
    with pytest.raises(UserNotFound):
        await store.set_keys("nobody", "example.org", [keys()])
    assert not await store.exists("nobody", "example.org")


async def test_delete(store: AccountStore) -> None:
    await store.create("alice", "example.org", [keys()])
    await store.delete("alice", "example.org")
    assert not await store.exists("alice", "example.org")
    assert await store.get_keys("alice", "example.org") is None
    with pytest.raises(UserNotFound):
        await store.delete("alice", "example.org")
    await store.create("alice", "example.org", [keys("SHA-1")])  # the name is free again
    assert await store.get_keys("alice", "example.org") == {"SHA-1": keys("SHA-1")}


async def test_list_users(store: AccountStore) -> None:
    for user, domain in [("zoe", "b.org"), ("bob", "a.org"), ("alice", "b.org"), ("Bob", "a.org")]:
        await store.create(user, domain, [keys()])
    assert await store.list_users() == [
        ("Bob", "a.org"),
        ("alice", "b.org"),
        ("bob", "a.org"),
        ("zoe", "b.org"),
    ]
    assert await store.list_users("a.org") == [("Bob", "a.org"), ("bob", "a.org")]
    assert await store.list_users("c.org") == []


async def test_returned_keys_are_a_copy(store: AccountStore) -> None:
    await store.create("alice", "example.org", [keys()])
    got = await store.get_keys("alice", "example.org")
    assert got is not None
    got.clear()
    assert await store.get_keys("alice", "example.org") == {"SHA-256": keys()}


# --- SQLite specifics ----------------------------------------------------------------------


async def open_accounts(path: Path) -> tuple[SqliteDatabase, SqlAccountStore]:
    db = await SqliteDatabase.open(path)
    await db.migrate(SqlAccountStore.MIGRATIONS["sqlite"])
    return db, SqlAccountStore(db)


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "new" / "dir" / "heron.db")
    try:
        mode = await db.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        sync = await db.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        fks = await db.run(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0])
        assert (mode, sync, fks) == ("wal", 1, 1)  # synchronous 1 is NORMAL
    finally:
        await db.close()
    await db.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        await db.run(lambda c: None)


async def test_data_survives_reopen_and_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "heron.db"
    db, accounts = await open_accounts(path)
    await accounts.create("alice", "example.org", [keys()])
    await db.close()
    for _ in range(2):
        db, accounts = await open_accounts(path)
        await db.migrate(SqlAccountStore.MIGRATIONS["sqlite"])  # again, on an up-to-date schema
        assert await accounts.get_keys("alice", "example.org") == {"SHA-256": keys()}
        version = await db.run(
            lambda c: c.execute(
                "SELECT version FROM schema_versions WHERE component = 'accounts'"
            ).fetchone()[0]
        )
        assert version == 1
        await db.close()


async def test_write_is_visible_to_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "heron.db"
    db, accounts = await open_accounts(path)
    try:
        await accounts.create("alice", "example.org", [keys()])
        other = sqlite3.connect(path)
        try:
            rows = other.execute("SELECT username FROM users").fetchall()
        finally:
            other.close()
        assert rows == [("alice",)]
    finally:
        await db.close()


async def test_delete_cascades_keys(tmp_path: Path) -> None:
    db, accounts = await open_accounts(tmp_path / "heron.db")
    try:
        await accounts.create("alice", "example.org", [keys("SHA-1"), keys("SHA-256")])
        await accounts.create("bob", "example.org", [keys()])
        await accounts.delete("alice", "example.org")
        rows = await db.run(
            lambda c: c.execute("SELECT username, hash_name FROM scram_keys").fetchall()
        )
        assert rows == [("bob", "SHA-256")]
    finally:
        await db.close()


async def test_migrations_apply_in_order_and_fix_forward(tmp_path: Path) -> None:
    path = tmp_path / "heron.db"
    v1 = Migration("notes", 1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
    v2 = Migration(
        "notes",
        2,
        "ALTER TABLE notes ADD COLUMN title TEXT;\n"
        "INSERT INTO notes (body, title) VALUES ('a;b', 't');",
    )
    db = await SqliteDatabase.open(path)
    await db.migrate([v1])
    await db.close()
    db = await SqliteDatabase.open(path)
    try:
        await db.migrate([v2, v1, *SqlAccountStore.MIGRATIONS["sqlite"]])
        await db.migrate([v1, v2])
        rows = await db.run(lambda c: c.execute("SELECT body, title FROM notes").fetchall())
        assert rows == [("a;b", "t")]
        versions = await db.run(
            lambda c: c.execute("SELECT * FROM schema_versions ORDER BY component").fetchall()
        )
        assert versions == [("accounts", 1), ("notes", 2)]
        with pytest.raises(MigrationError, match="newer"):
            await db.migrate([v1])
    finally:
        await db.close()


async def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "heron.db")
    try:
        bad = Migration("x", 1, "CREATE TABLE t (a INTEGER);\nTHIS IS NOT SQL;")
        with pytest.raises(sqlite3.OperationalError):
            await db.migrate([bad])
        tables = await db.run(
            lambda c: c.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchall()
        )
        assert tables == []
        assert await db.run(lambda c: c.execute("SELECT * FROM schema_versions").fetchall()) == []
        with pytest.raises(MigrationError, match="unique"):
            await db.migrate([Migration("y", 1, ""), Migration("y", 1, "")])
    finally:
        await db.close()


async def test_transaction_left_open_is_rolled_back(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "heron.db")
    try:
        await db.migrate([Migration("t", 1, "CREATE TABLE t (a INTEGER);")])

        def forgetful(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (1)")  # implicit BEGIN, never committed

        with pytest.raises(RuntimeError, match="transaction open"):
            await db.run(forgetful)

        def failing(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("INSERT INTO t VALUES (2)")
                raise KeyError("boom")

        with pytest.raises(KeyError):
            await db.run(failing)

        def good(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("INSERT INTO t VALUES (3)")

        await db.run(good)
        assert await db.run(lambda c: c.execute("SELECT a FROM t").fetchall()) == [(3,)]
    finally:
        await db.close()
