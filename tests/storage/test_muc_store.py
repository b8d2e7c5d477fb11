"""What persistent rooms keep (muc/store.py): written, read back, replaced and forgotten;
the shipped migrations still upgrade a version-1 database."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.jid import JID
from heron.modules.muc.config import RoomConfig
from heron.modules.muc.room import RoomRecord
from heron.modules.muc.store import MIGRATIONS, SqliteRoomStore
from heron.storage.sqlite import SqliteDatabase, transaction

ROOM = JID.parse("lounge@conference.example.org")
ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteRoomStore]:
    db = await SqliteDatabase.open(tmp_path / "heron.db")
    store = SqliteRoomStore(db)
    await store.migrate()
    try:
        yield store
    finally:
        await db.close()


def record(**changes: object) -> RoomRecord:
    fields: dict[str, object] = {
        "jid": ROOM,
        "config": RoomConfig(name="Lounge", persistent=True, members_only=True),
        "affiliations": {ALICE: "owner", BOB: "member"},
        "registered": {BOB: "Bobby"},
        "subject": "Heron",
        "vcard": "<vCard xmlns='vcard-temp'><FN>Lounge</FN></vCard>",
    }
    fields.update(changes)
    return RoomRecord(**fields)  # type: ignore[arg-type]


async def test_a_room_is_kept_replaced_and_forgotten(store: SqliteRoomStore) -> None:
    assert await store.load() == []
    await store.save(record())
    assert await store.load() == [record()]
    await store.save(record(subject="", affiliations={ALICE: "owner"}, registered={}))
    assert await store.load() == [record(subject="", affiliations={ALICE: "owner"}, registered={})]
    await store.delete(ROOM)
    await store.delete(ROOM)  # forgetting twice is no error
    assert await store.load() == []


async def test_rooms_written_before_registration_existed_load(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "old.db")
    try:
        await db.migrate(MIGRATIONS[:1])
        await db.run(_insert_version_1_row)
        store = SqliteRoomStore(db)
        await store.migrate()
        [old] = await store.load()
        assert old.affiliations == {ALICE: "owner"}
        assert old.registered == {}
        assert old.vcard == ""
        assert old.subject == "t"
    finally:
        await db.close()


def _insert_version_1_row(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO muc_rooms (jid, config, affiliations, subject) VALUES (?, ?, ?, ?)",
            (
                str(ROOM),
                RoomConfig(persistent=True).to_json(),
                '{"alice@example.org": "owner"}',
                "t",
            ),
        )
