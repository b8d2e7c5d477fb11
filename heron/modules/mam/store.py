"""The message archive (XEP-0313) behind ``ArchiveStore``, on either storage engine: the
archives of accounts and of rooms (owner = the room's JID), and each account's default
mode.

Archived rows are written behind: a batch at most ``FLUSH_AFTER_S`` after the first queued
row, or at once when ``FLUSH_ROWS`` wait (COPY on PostgreSQL, one multi-row INSERT
transaction on SQLite). Batches are written one at a time in queue order, so row ids grow
in the order messages were archived, and so with time: paging (XEP-0059) walks row ids,
and time filters and retention become row-id bounds found by binary search, without an
index on time. Every read flushes the queue first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from heron.storage.batch import BehindStore, append_rows
from heron.storage.db import Database, Dialect, Executor, Migration, ddl

# The tables the mam module created on SQLite before (an old heron.db opens as it is);
# each table's text is written once and produced for both engines.
_TABLES: Final = """
        CREATE TABLE mam_messages (
            id {serial},
            archive_id TEXT NOT NULL UNIQUE,
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            with_jid TEXT NOT NULL,
            at {real} NOT NULL,
            xml TEXT NOT NULL
        );
        CREATE INDEX mam_by_user ON mam_messages (domain, username, id);
        CREATE INDEX mam_by_with ON mam_messages (domain, username, with_jid, id);
        CREATE TABLE mam_prefs (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            default_mode TEXT NOT NULL,
            PRIMARY KEY (domain, username)
        );
        """
_PREFS_JIDS: Final = """
        CREATE TABLE mam_prefs_jids (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            jid TEXT NOT NULL,
            rule TEXT NOT NULL,
            PRIMARY KEY (domain, username, jid)
        );
        """
MIGRATIONS: Final = (
    Migration("mam", 1, ddl("sqlite", _TABLES)),
    Migration(
        "mam",
        2,
        """
        CREATE INDEX mam_by_time ON mam_messages (domain, username, at);
        """,
    ),
    Migration(
        "mam",
        3,
        """
        DROP INDEX IF EXISTS mam_by_time;
        """,
    ),
    Migration("mam", 4, _PREFS_JIDS),
)
POSTGRESQL_MIGRATIONS: Final = (
    Migration("mam", 1, ddl("postgresql", _TABLES)),
    Migration("mam", 2, _PREFS_JIDS),
)
FLUSH_AFTER_S: Final = 0.05  # archived rows wait at most this long to be written together
FLUSH_ROWS: Final = 512  # ... or until this many are waiting
COLUMNS: Final = ("archive_id", "domain", "username", "with_jid", "at", "xml")


@dataclass(frozen=True, slots=True)
class ArchiveRow:
    archive_id: str
    domain: str  # the owner: an account, or a room
    username: str
    with_jid: str  # the bare JID of the other party
    at: float
    xml: str

    def values(self) -> tuple[str, str, str, str, float, str]:
        return (self.archive_id, self.domain, self.username, self.with_jid, self.at, self.xml)


@dataclass(slots=True)
class Query:
    """What an archive query asks for (XEP-0313 §4.1 form fields, XEP-0059 paging)."""

    with_jid: str | None = None
    start: float | None = None
    end: float | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple[str, ...] = ()
    max: int = 50
    backwards: bool = False  # RSM <before/>: the page ending before a point (or the last)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[tuple[str, float, str]]  # (archive id, time, xml), oldest first
    complete: bool  # nothing more in the direction of paging
    count: int | None  # matching rows, when cheap enough to count


class UnknownId(KeyError):
    """An ``after``/``before`` id that is not in this archive."""


class ArchiveStore(Protocol):
    async def append(self, row: ArchiveRow) -> None:
        """Archive one message (written within FLUSH_AFTER_S; visible to reads at once)."""
        ...

    async def flush(self) -> None:
        """Write what is queued."""
        ...

    async def query(self, domain: str, username: str, q: Query) -> Page:
        """One page of an archive. Raises UnknownId for an after/before id not in it."""
        ...

    async def lookup(self, domain: str, username: str, archive_id: str) -> str | None:
        """The stored XML of one archived message."""
        ...

    async def replace(self, domain: str, username: str, archive_id: str, xml: str) -> bool:
        """Overwrite one archived message (a tombstone); False when there is none."""
        ...

    async def ends(
        self, domain: str, username: str
    ) -> tuple[tuple[str, float] | None, tuple[str, float] | None]:
        """The first and the last archived message: (archive id, time)."""
        ...

    async def expire(self, cutoff: float) -> int:
        """Forget every message archived before ``cutoff``; how many went."""
        ...

    async def mode(self, domain: str, username: str) -> str | None:
        """The account's default archiving mode, None when it never set one."""
        ...

    async def set_mode(self, domain: str, username: str, mode: str) -> None: ...

    async def rules(self, domain: str, username: str) -> tuple[list[str], list[str]]:
        """The JIDs always archived and never archived (XEP-0441), each sorted."""
        ...

    async def set_rules(
        self, domain: str, username: str, always: Sequence[str], never: Sequence[str]
    ) -> None:
        """Replace both lists at once."""
        ...

    async def forget(self, domain: str, username: str) -> None:
        """The account is gone: its archive and preferences go too."""
        ...

    async def close(self) -> None:
        """Write what is queued."""
        ...


class SqlArchiveStore(BehindStore[tuple[str, str, str, str, float, str]]):
    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": MIGRATIONS,
        "postgresql": POSTGRESQL_MIGRATIONS,
    }

    def __init__(self, db: Database) -> None:
        super().__init__(db, delay_s=FLUSH_AFTER_S, max_rows=FLUSH_ROWS, what="archived messages")

    async def _write(self, rows: list[tuple[str, str, str, str, float, str]]) -> None:
        await append_rows(self.db, "mam_messages", COLUMNS, rows)

    async def append(self, row: ArchiveRow) -> None:
        await self._queue.add(row.values())

    async def lookup(self, domain: str, username: str, archive_id: str) -> str | None:
        await self.flush()
        xml = await self.db.fetchval(
            "SELECT xml FROM mam_messages WHERE domain = ? AND username = ? AND archive_id = ?",
            domain,
            username,
            archive_id,
        )
        return None if xml is None else str(xml)

    async def replace(self, domain: str, username: str, archive_id: str, xml: str) -> bool:
        await self.flush()
        changed = await self.db.execute(
            "UPDATE mam_messages SET xml = ? WHERE domain = ? AND username = ? AND archive_id = ?",
            xml,
            domain,
            username,
            archive_id,
        )
        return changed > 0

    async def mode(self, domain: str, username: str) -> str | None:
        mode = await self.db.fetchval(
            "SELECT default_mode FROM mam_prefs WHERE domain = ? AND username = ?",
            domain,
            username,
        )
        return None if mode is None else str(mode)

    async def set_mode(self, domain: str, username: str, mode: str) -> None:
        await self.db.execute(
            "INSERT INTO mam_prefs (domain, username, default_mode) VALUES (?, ?, ?)"
            " ON CONFLICT (domain, username) DO UPDATE SET default_mode = excluded.default_mode",
            domain,
            username,
            mode,
        )

    async def rules(self, domain: str, username: str) -> tuple[list[str], list[str]]:
        rows = await self.db.fetch(
            "SELECT jid, rule FROM mam_prefs_jids WHERE domain = ? AND username = ? ORDER BY jid",
            domain,
            username,
        )
        always = [str(r[0]) for r in rows if r[1] == "always"]
        return always, [str(r[0]) for r in rows if r[1] == "never"]

    async def set_rules(
        self, domain: str, username: str, always: Sequence[str], never: Sequence[str]
    ) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM mam_prefs_jids WHERE domain = ? AND username = ?", domain, username
            )
            rows = [(domain, username, jid, "always") for jid in always]
            rows += [(domain, username, jid, "never") for jid in never]
            if rows:
                await tx.executemany(
                    "INSERT INTO mam_prefs_jids (domain, username, jid, rule) VALUES (?, ?, ?, ?)",
                    rows,
                )

    async def forget(self, domain: str, username: str) -> None:
        await self._forget_account(domain, username, "mam_messages", "mam_prefs", "mam_prefs_jids")

    async def expire(self, cutoff: float) -> int:
        await self.flush()
        first = await first_row_at_or_after(self.db, cutoff)
        return await self.db.execute("DELETE FROM mam_messages WHERE id < ?", first)

    async def ends(
        self, domain: str, username: str
    ) -> tuple[tuple[str, float] | None, tuple[str, float] | None]:
        await self.flush()
        found: list[tuple[str, float] | None] = []
        for order in ("ASC", "DESC"):
            row = await self.db.fetchrow(
                "SELECT archive_id, at FROM mam_messages WHERE domain = ? AND username = ?"  # noqa: S608
                f" ORDER BY id {order} LIMIT 1",
                domain,
                username,
            )
            found.append((str(row[0]), float(row[1])) if row is not None else None)
        return found[0], found[1]

    async def query(self, domain: str, username: str, q: Query) -> Page:
        await self.flush()
        db = self.db
        where = ["domain = ?", "username = ?"]
        args: list[object] = [domain, username]
        if q.with_jid is not None:
            where.append("with_jid = ?")
            args.append(q.with_jid)
        # Times become row-id bounds: rows are appended in time order (see
        # first_row_at_or_after), so the per-account id indexes serve time ranges too.
        if q.start is not None:
            where.append("id >= ?")
            args.append(await first_row_at_or_after(db, q.start))
        if q.end is not None:
            where.append("id < ?")
            args.append(await first_row_at_or_after(db, math.nextafter(q.end, math.inf)))
        if q.ids:
            where.append(f"archive_id IN ({', '.join('?' for _ in q.ids)})")
            args.extend(q.ids)
        count_where, count_args = list(where), list(args)
        if q.after_id is not None:
            where.append("id > ?")
            args.append(await _row_id(db, domain, username, q.after_id))
        if q.before_id is not None:
            where.append("id < ?")
            args.append(await _row_id(db, domain, username, q.before_id))
        order = "DESC" if q.backwards else "ASC"
        rows = await db.fetch(
            f"SELECT archive_id, at, xml FROM mam_messages WHERE {' AND '.join(where)}"  # noqa: S608
            f" ORDER BY id {order} LIMIT ?",
            *args,
            q.max + 1,
        )
        complete = len(rows) <= q.max
        page = [(str(r[0]), float(r[1]), str(r[2])) for r in rows[: q.max]]
        if q.backwards:
            page.reverse()
        if q.with_jid is None and q.start is None and q.end is None and not q.ids:
            return Page(page, complete, None)  # counting a whole archive costs a scan
        count = await db.fetchval(
            f"SELECT COUNT(*) FROM mam_messages WHERE {' AND '.join(count_where)}",  # noqa: S608
            *count_args,
        )
        return Page(page, complete, int(count))


async def _row_id(db: Executor, domain: str, username: str, archive_id: str) -> int:
    row_id = await db.fetchval(
        "SELECT id FROM mam_messages WHERE domain = ? AND username = ? AND archive_id = ?",
        domain,
        username,
        archive_id,
    )
    if row_id is None:
        raise UnknownId(archive_id)
    return int(row_id)


async def first_row_at_or_after(db: Executor, cutoff: float) -> int:
    """Rows are appended in time order, so ``at`` grows with ``id``: a binary search over
    the row ids finds the first row to keep without an index on ``at``. Returns one past
    the last row when every row is older, 0 when there is none."""
    # Two queries: SQLite answers MIN or MAX alone from the key, both together by a scan.
    low = await db.fetchval("SELECT MIN(id) FROM mam_messages")
    high = await db.fetchval("SELECT MAX(id) FROM mam_messages")
    if low is None or high is None:
        return 0
    low, high = int(low), int(high)
    answer = high + 1
    while low <= high:
        middle = (low + high) // 2
        row = await db.fetchrow(
            "SELECT id, at FROM mam_messages WHERE id >= ? ORDER BY id LIMIT 1", middle
        )
        if row is None:
            high = middle - 1
        elif float(row[1]) >= cutoff:
            answer = min(answer, int(row[0]))
            high = middle - 1
        else:
            low = int(row[0]) + 1
    return answer
