"""What persistent rooms keep across restarts, behind ``RoomStore``: configuration,
affiliations, reserved nicks, subject and vCard, one row per room (the maps as JSON)."""

from __future__ import annotations

import json
import sqlite3
from typing import Final, Protocol

from heron.jid import JID
from heron.modules.muc.config import RoomConfig
from heron.modules.muc.room import RoomRecord
from heron.storage.sqlite import Migration, SqliteDatabase, transaction

MIGRATIONS: Final = (
    Migration(
        "muc",
        1,
        """
        CREATE TABLE muc_rooms (
            jid TEXT PRIMARY KEY,
            config TEXT NOT NULL,
            affiliations TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT ''
        );
        """,
    ),
    Migration(
        "muc",
        2,
        """
        ALTER TABLE muc_rooms ADD COLUMN registered TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE muc_rooms ADD COLUMN vcard TEXT NOT NULL DEFAULT '';
        """,
    ),
)


class RoomStore(Protocol):
    async def migrate(self) -> None: ...

    async def load(self) -> list[RoomRecord]:
        """Every stored room."""
        ...

    async def save(self, record: RoomRecord) -> None:
        """Write the room, replacing what was kept of it."""
        ...

    async def delete(self, jid: JID) -> None:
        """Forget the room (no error if it was never kept)."""
        ...


class SqliteRoomStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.migrate(MIGRATIONS)

    async def load(self) -> list[RoomRecord]:
        return await self.db.run(_load)

    async def save(self, record: RoomRecord) -> None:
        row = (
            str(record.jid),
            record.config.to_json(),
            json.dumps({str(k): v for k, v in record.affiliations.items()}),
            record.subject,
            json.dumps({str(k): v for k, v in record.registered.items()}),
            record.vcard,
        )

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT OR REPLACE INTO muc_rooms"
                    " (jid, config, affiliations, subject, registered, vcard)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )

        await self.db.run(write)

    async def delete(self, jid: JID) -> None:
        key = str(jid)

        def forget(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM muc_rooms WHERE jid = ?", (key,))

        await self.db.run(forget)


def _load(conn: sqlite3.Connection) -> list[RoomRecord]:
    records = []
    for jid, config, affiliations, subject, registered, vcard in conn.execute(
        "SELECT jid, config, affiliations, subject, registered, vcard FROM muc_rooms"
    ).fetchall():
        records.append(
            RoomRecord(
                JID.parse(str(jid)),
                RoomConfig.from_json(str(config)),
                {JID.parse(k): str(v) for k, v in json.loads(str(affiliations)).items()},
                {JID.parse(k): str(v) for k, v in json.loads(str(registered)).items()},
                str(subject),
                str(vcard),
            )
        )
    return records
