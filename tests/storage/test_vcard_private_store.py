"""The vCard (XEP-0054) and private XML (XEP-0049) stores on both engines: written, read
back, replaced and deleted; unicode and 64 KiB payloads; gone with their account; kept
across a restart; and a SQLite file made before the stores existed still opens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.private import SqlPrivateStore
from heron.modules.vcard import SqlVcardStore
from heron.storage.accounts import SqlAccountStore
from heron.storage.db import Database
from heron.storage.sqlite import SqliteDatabase
from tests.engines import ENGINES
from tests.storage.owned import ALICE, BIG, BOB, add_accounts, delete_account, place, reopen

STORES = (SqlVcardStore, SqlPrivateStore)


@pytest.fixture(params=ENGINES)
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return place(request.param, tmp_path, request)


@pytest.fixture
async def db(where: str) -> AsyncIterator[Database]:
    database = await reopen(where, STORES)
    await add_accounts(database, ALICE, BOB)
    try:
        yield database
    finally:
        await database.close()


async def test_vcard_written_read_replaced_deleted(db: Database) -> None:
    store = SqlVcardStore(db)
    assert await store.get(ALICE) is None
    await store.put(ALICE, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
    await store.put(BOB, "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>")
    await store.put(ALICE, "<vCard xmlns='vcard-temp'><FN>Alicia</FN></vCard>")
    assert await store.get(ALICE) == "<vCard xmlns='vcard-temp'><FN>Alicia</FN></vCard>"
    await store.delete(ALICE)
    await store.delete(ALICE)  # twice is no error
    assert await store.get(ALICE) is None
    assert await store.get(BOB) == "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>"


async def test_private_keyed_by_namespace_and_name_all_or_none(db: Database) -> None:
    store = SqlPrivateStore(db)
    await store.put(ALICE, [("urn:a", "x", "<x xmlns='urn:a'>1</x>"), ("urn:b", "x", "<x/>")])
    await store.put(ALICE, [("urn:a", "x", "<x xmlns='urn:a'>2</x>")])
    assert await store.get(ALICE, "urn:a", "x") == "<x xmlns='urn:a'>2</x>"
    assert await store.get(ALICE, "urn:b", "x") == "<x/>"
    assert await store.get(ALICE, "urn:a", "y") is None
    assert await store.get(BOB, "urn:a", "x") is None
    with pytest.raises(Exception):  # noqa: B017, PT011 (each engine raises its own error)
        # The second fragment names no account's row: the first is not kept either.
        await store.put(ALICE, [("urn:c", "x", "<x/>"), ("urn:c", "x", None)])  # type: ignore[list-item]
    assert await store.get(ALICE, "urn:c", "x") is None
    await store.delete(ALICE, "urn:a", "x")
    assert await store.get(ALICE, "urn:a", "x") is None
    assert await store.get(ALICE, "urn:b", "x") == "<x/>"


async def test_unicode_and_64_kib_payloads(db: Database) -> None:
    vcards, private = SqlVcardStore(db), SqlPrivateStore(db)
    card = f"<vCard xmlns='vcard-temp'><FN>{BIG}</FN><NICKNAME>鷺 🐦</NICKNAME></vCard>"
    await vcards.put(ALICE, card)
    assert await vcards.get(ALICE) == card
    fragment = f"<note xmlns='urn:ü'>{BIG}</note>"
    await private.put(ALICE, [("urn:ü", "note", fragment)])
    assert await private.get(ALICE, "urn:ü", "note") == fragment


async def test_rows_go_with_their_account(db: Database) -> None:
    vcards, private = SqlVcardStore(db), SqlPrivateStore(db)
    for account in (ALICE, BOB):
        await vcards.put(account, "<vCard xmlns='vcard-temp'/>")
        await private.put(account, [("urn:a", "x", "<x/>")])
    await delete_account(db, ALICE)
    assert await vcards.get(ALICE) is None
    assert await private.get(ALICE, "urn:a", "x") is None
    assert await vcards.get(BOB) == "<vCard xmlns='vcard-temp'/>"
    assert await private.get(BOB, "urn:a", "x") == "<x/>"
    await add_accounts(db, ALICE)  # a new account of the same name starts empty
    assert await vcards.get(ALICE) is None


async def test_kept_across_a_restart(db: Database, where: str) -> None:
    await SqlVcardStore(db).put(ALICE, "<vCard xmlns='vcard-temp'><FN>Kept</FN></vCard>")
    await SqlPrivateStore(db).put(ALICE, [("urn:a", "x", "<x>kept</x>")])
    await db.close()
    again = await reopen(where, STORES)  # migrations find nothing left to do
    try:
        assert await SqlVcardStore(again).get(ALICE) == (
            "<vCard xmlns='vcard-temp'><FN>Kept</FN></vCard>"
        )
        assert await SqlPrivateStore(again).get(ALICE, "urn:a", "x") == "<x>kept</x>"
    finally:
        await again.close()


async def test_a_sqlite_file_from_before_the_stores_opens(tmp_path: Path) -> None:
    """Tables made by the modules' own version 1; rows of accounts deleted back then (when
    nothing cascaded) are dropped on the way, the others kept."""
    path = tmp_path / "old.db"
    db = await SqliteDatabase.open(path)
    try:
        await db.migrate([SqlVcardStore.migrations_for("sqlite")[0]])
        await db.migrate([SqlPrivateStore.migrations_for("sqlite")[0]])
        await db.migrate(SqlAccountStore.migrations_for("sqlite"))
        await add_accounts(db, ALICE)
        for user in ("alice", "gone"):
            await db.execute(
                "INSERT INTO vcards (domain, username, xml) VALUES (?, ?, ?)",
                "example.org",
                user,
                f"<vCard xmlns='vcard-temp'><FN>{user}</FN></vCard>",
            )
            await db.execute(
                "INSERT INTO private_xml (domain, username, ns, name, xml) VALUES (?, ?, ?, ?, ?)",
                "example.org",
                user,
                "urn:a",
                "x",
                "<x/>",
            )
    finally:
        await db.close()
    db2 = await reopen(str(path), STORES)
    try:
        rows = await db2.fetch("SELECT username FROM vcards")
        assert [r[0] for r in rows] == ["alice"]
        assert (
            await SqlVcardStore(db2).get(ALICE)
            == "<vCard xmlns='vcard-temp'><FN>alice</FN></vCard>"
        )
        assert await SqlPrivateStore(db2).get(ALICE, "urn:a", "x") == "<x/>"
        assert await db2.fetchval("SELECT COUNT(*) FROM private_xml") == 1
        await delete_account(db2, ALICE)  # and from now on they cascade
        assert await db2.fetchval("SELECT COUNT(*) FROM vcards") == 0
        assert await db2.fetchval("SELECT COUNT(*) FROM private_xml") == 0
    finally:
        await db2.close()
