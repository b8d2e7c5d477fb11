"""What persistent rooms keep across restarts, behind ``RoomStore``: configuration,
affiliations, reserved nicks, subject and vCard, one row per room (the maps as JSON), on
either storage engine."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final, Protocol

from heron.jid import JID
from heron.modules.muc.config import RoomConfig
from heron.modules.muc.room import RoomRecord
from heron.storage.db import Dialect, Migration, SqlStore

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
    async def load(self) -> list[RoomRecord]:
        """Every stored room."""
        ...

    async def get(self, jid: JID) -> RoomRecord | None:
        """One stored room (a cluster node taking it over), None when it is not kept."""
        ...

    async def save(self, record: RoomRecord) -> None:
        """Write the room, replacing what was kept of it."""
        ...

    async def delete(self, jid: JID) -> None:
        """Forget the room (no error if it was never kept)."""
        ...


class SqlRoomStore(SqlStore):
    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": MIGRATIONS,
        "postgresql": MIGRATIONS,  # the same SQL serves both engines
    }

    async def load(self) -> list[RoomRecord]:
        rows = await self.db.fetch(
            "SELECT jid, config, affiliations, subject, registered, vcard FROM muc_rooms"
        )
        return [_record(row) for row in rows]

    async def get(self, jid: JID) -> RoomRecord | None:
        row = await self.db.fetchrow(
            "SELECT jid, config, affiliations, subject, registered, vcard FROM muc_rooms"
            " WHERE jid = ?",
            str(jid),
        )
        return _record(row) if row is not None else None

    async def save(self, record: RoomRecord) -> None:
        await self.db.execute(
            "INSERT INTO muc_rooms (jid, config, affiliations, subject, registered, vcard)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (jid) DO UPDATE SET config = excluded.config,"
            " affiliations = excluded.affiliations, subject = excluded.subject,"
            " registered = excluded.registered, vcard = excluded.vcard",
            str(record.jid),
            record.config.to_json(),
            json.dumps({str(k): v for k, v in record.affiliations.items()}),
            record.subject,
            json.dumps({str(k): v for k, v in record.registered.items()}),
            record.vcard,
        )

    async def delete(self, jid: JID) -> None:
        await self.db.execute("DELETE FROM muc_rooms WHERE jid = ?", str(jid))


def _record(row: Sequence[object]) -> RoomRecord:
    jid, config, affiliations, subject, registered, vcard = row
    return RoomRecord(
        JID.parse(str(jid)),
        RoomConfig.from_json(str(config)),
        {JID.parse(k): str(v) for k, v in json.loads(str(affiliations)).items()},
        {JID.parse(k): str(v) for k, v in json.loads(str(registered)).items()},
        str(subject),
        str(vcard),
    )
