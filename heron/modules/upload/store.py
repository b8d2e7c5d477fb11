"""Upload slots, behind ``UploadStore``: one row per slot handed out (the file, once it is
uploaded, is ``data_dir/upload/<slot>``). A user's quota is the sum of the sizes of their
slots, used or not, on every upload service of the server.

A slot names its owner as a bare JID; when the account is deleted, its slots are given to
`UploadStore.expired` at the next sweep (and at once by the module when the deletion
happens in this process), so the files on disk go with the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from heron.storage.db import Dialect, Migration, Row, SqlStore


@dataclass(frozen=True, slots=True)
class Slot:
    slot: str
    owner: str
    filename: str
    size: int
    content_type: str
    created: float
    uploaded: bool


class UploadStore(Protocol):
    async def usage(self, owner: str) -> tuple[int, float | None]:
        """Bytes the owner's slots hold (used or not), and when the oldest was made."""
        ...

    async def add(self, service: str, slot: Slot) -> None: ...

    async def find(self, service: str, slot: str) -> Slot | None: ...

    async def mark_uploaded(self, slot: str) -> None: ...

    async def expired(self, service: str, kept_until: float, unused_until: float) -> list[Slot]:
        """Forget and return the slots made before ``kept_until``, those never used made
        before ``unused_until``, and those whose owner's account is gone."""
        ...

    async def forget_owner(self, service: str, owner: str) -> list[Slot]:
        """Forget and return every slot of ``owner`` on ``service``."""
        ...


_TABLE: Final = """
        CREATE TABLE upload_files (
            slot TEXT PRIMARY KEY,
            service TEXT NOT NULL,
            owner TEXT NOT NULL,
            filename TEXT NOT NULL,
            size {bigint} NOT NULL,
            content_type TEXT NOT NULL,
            created {real} NOT NULL,
            uploaded INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX upload_by_owner ON upload_files (owner);
        CREATE INDEX upload_by_created ON upload_files (created);
        """
_SQLITE: Final = (  # version 1 is the table as the module made it before the store existed
    Migration("upload", 1, _TABLE.format(bigint="INTEGER", real="REAL")),
)
_POSTGRESQL: Final = (
    Migration("upload", 1, _TABLE.format(bigint="BIGINT", real="DOUBLE PRECISION")),
)


def _slot(row: Row) -> Slot:
    return Slot(
        str(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]), float(row[5]), bool(row[6])
    )


class SqlUploadStore(SqlStore):
    """The ``upload_files`` table, on either engine."""

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": _SQLITE,
        "postgresql": _POSTGRESQL,
    }

    async def usage(self, owner: str) -> tuple[int, float | None]:
        row = await self.db.fetchrow(
            "SELECT COALESCE(SUM(size), 0), MIN(created) FROM upload_files WHERE owner = ?", owner
        )
        assert row is not None  # an aggregate always has its row
        return int(row[0]), (float(row[1]) if row[1] is not None else None)

    async def add(self, service: str, slot: Slot) -> None:
        await self.db.execute(
            "INSERT INTO upload_files"
            " (slot, service, owner, filename, size, content_type, created, uploaded)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            slot.slot,
            service,
            slot.owner,
            slot.filename,
            slot.size,
            slot.content_type,
            slot.created,
            int(slot.uploaded),
        )

    async def find(self, service: str, slot: str) -> Slot | None:
        row = await self.db.fetchrow(
            "SELECT slot, owner, filename, size, content_type, created, uploaded"
            " FROM upload_files WHERE slot = ? AND service = ?",
            slot,
            service,
        )
        return None if row is None else _slot(row)

    async def mark_uploaded(self, slot: str) -> None:
        await self.db.execute("UPDATE upload_files SET uploaded = 1 WHERE slot = ?", slot)

    async def expired(self, service: str, kept_until: float, unused_until: float) -> list[Slot]:
        rows = await self.db.fetch(
            # The owners' subquery is evaluated once (an uncorrelated IN) on both engines.
            "DELETE FROM upload_files WHERE service = ?"
            " AND (created < ? OR (uploaded = 0 AND created < ?)"
            " OR owner NOT IN (SELECT username || '@' || domain FROM users))"
            " RETURNING slot, owner, filename, size, content_type, created, uploaded",
            service,
            kept_until,
            unused_until,
        )
        return [_slot(row) for row in rows]

    async def forget_owner(self, service: str, owner: str) -> list[Slot]:
        rows = await self.db.fetch(
            "DELETE FROM upload_files WHERE service = ? AND owner = ?"
            " RETURNING slot, owner, filename, size, content_type, created, uploaded",
            service,
            owner,
        )
        return [_slot(row) for row in rows]
