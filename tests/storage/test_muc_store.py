"""What persistent rooms keep (muc/store.py), on both engines: written, read back, replaced
and forgotten; a room written before version 2 of the schema still loads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.jid import JID
from heron.modules.muc.config import RoomConfig
from heron.modules.muc.room import RoomRecord
from heron.modules.muc.store import SqlRoomStore
from tests.engines import ENGINES, open_engine, open_store_db

ROOM = JID.parse("lounge@conference.example.org")
ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlRoomStore]:
    db = await open_store_db(request.param, tmp_path, request, [SqlRoomStore])
    try:
        yield SqlRoomStore(db)
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


async def test_a_room_is_kept_replaced_and_forgotten(store: SqlRoomStore) -> None:
    assert await store.load() == []
    await store.save(record())
    await store.save(record(jid=JID.parse("other@conference.example.org"), subject="x"))
    assert sorted(await store.load(), key=lambda r: str(r.jid)) == [
        record(),
        record(jid=JID.parse("other@conference.example.org"), subject="x"),
    ]
    changed = record(subject="", affiliations={ALICE: "owner"}, registered={})
    await store.save(changed)
    assert changed in await store.load()
    assert record() not in await store.load()
    await store.delete(ROOM)
    await store.delete(ROOM)  # forgetting twice is no error
    assert [r.jid for r in await store.load()] == [JID.parse("other@conference.example.org")]


@pytest.mark.parametrize("engine", ENGINES)
async def test_rooms_kept_before_registration_existed_still_load(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = await open_engine(engine, tmp_path, request)
    try:
        await db.migrate(SqlRoomStore.migrations_for(db.dialect)[:1])
        await db.execute(
            "INSERT INTO muc_rooms (jid, config, affiliations, subject) VALUES (?, ?, ?, ?)",
            str(ROOM),
            RoomConfig(persistent=True).to_json(),
            '{"alice@example.org": "owner"}',
            "t",
        )
        await db.migrate(SqlRoomStore.migrations_for(db.dialect))
        [old] = await SqlRoomStore(db).load()
        assert old.affiliations == {ALICE: "owner"}
        assert old.registered == {}
        assert old.vcard == ""
        assert old.subject == "t"
    finally:
        await db.close()
