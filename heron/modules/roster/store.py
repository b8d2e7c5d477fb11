"""Roster storage: one row per contact, a version counter per user (XEP-0237).

Each row remembers the version that last changed it and removals leave a tombstone, so a
client that knows version N can be sent just what changed since (RFC 6121 §2.6). Deltas are
complete from a user's ``horizon`` on: tombstones past ``MAX_TOMBSTONES`` are dropped and
the horizon moves up, and a client older than that gets the whole roster again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from heron.storage.batch import WriteBehind
from heron.storage.db import Database, Dialect, Executor, Migration, Row, SqlStore, ddl


# The tables as the roster module first created them on SQLite; PostgreSQL, which came
# later, starts with the columns SQLite gained in later versions (``grown`` is their text).
def _rosters(grown_items: str = "", grown_versions: str = "") -> str:
    return f"""
        CREATE TABLE roster_items (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            contact TEXT NOT NULL,
            name TEXT,
            subscription TEXT NOT NULL DEFAULT 'none',
            ask INTEGER NOT NULL DEFAULT 0,
            groups TEXT NOT NULL DEFAULT '[]',{grown_items}
            PRIMARY KEY (domain, username, contact)
        );
        CREATE TABLE roster_versions (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            version {{bigint}} NOT NULL,{grown_versions}
            PRIMARY KEY (domain, username)
        );
        """


_GROWN_ITEMS: Final = """
            pending_in INTEGER NOT NULL DEFAULT 0,
            approved INTEGER NOT NULL DEFAULT 0,
            in_roster INTEGER NOT NULL DEFAULT 1,
            version {bigint} NOT NULL DEFAULT 0,"""
_GROWN_VERSIONS: Final = """
            horizon {bigint} NOT NULL DEFAULT 0,"""
_REMOVED: Final = """CREATE TABLE roster_removed (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            contact TEXT NOT NULL,
            version {bigint} NOT NULL,
            PRIMARY KEY (domain, username, contact)
        );
        """
_LAST_ACTIVITY: Final = """CREATE TABLE last_activity (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            at {real} NOT NULL,
            status TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (domain, username)
        );
        """

# The SQLite steps are the roster module's tables from before stores were engine-neutral:
# the same names and columns, so an existing heron.db opens as it is.
MIGRATIONS: Final = (
    Migration("roster", 1, ddl("sqlite", _rosters())),
    Migration(
        "roster",
        2,
        """
        ALTER TABLE roster_items ADD COLUMN pending_in INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE roster_items ADD COLUMN approved INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE roster_items ADD COLUMN in_roster INTEGER NOT NULL DEFAULT 1;
        """,
    ),
    Migration("roster", 3, ddl("sqlite", "\n        " + _LAST_ACTIVITY)),
    Migration(
        "roster",
        4,
        """
        ALTER TABLE roster_items ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE roster_versions ADD COLUMN horizon INTEGER NOT NULL DEFAULT 0;
        UPDATE roster_versions SET horizon = version;
        """  # noqa: S608 (constant text)
        + ddl("sqlite", _REMOVED),
    ),
)
POSTGRESQL_MIGRATIONS: Final = (
    Migration(
        "roster",
        1,
        ddl(
            "postgresql",
            _rosters(_GROWN_ITEMS, _GROWN_VERSIONS) + _REMOVED + _LAST_ACTIVITY,
        ),
    ),
)
MAX_TOMBSTONES: Final = 500
LAST_FLUSH_S: Final = 0.05  # last activity waits at most this long to be written
LAST_FLUSH_ROWS: Final = 512


@dataclass(frozen=True, slots=True)
class RosterItem:
    contact: str  # bare JID
    name: str | None = None
    subscription: str = "none"  # none | to | from | both
    ask: bool = False  # a subscribe request is pending out
    groups: tuple[str, ...] = ()
    pending_in: bool = False  # the contact asked to subscribe, no answer yet
    approved: bool = False  # pre-approved (RFC 6121 §3.4)
    in_roster: bool = True  # False: only subscription state, not shown to the client


class RosterStore(Protocol):
    async def get(self, username: str, domain: str) -> tuple[int, list[RosterItem]]: ...

    async def version(self, username: str, domain: str) -> int: ...

    async def item(self, username: str, domain: str, contact: str) -> RosterItem | None: ...

    async def put(self, username: str, domain: str, item: RosterItem, limit: int) -> int:
        """Insert or replace; returns the new version. Raises RosterFull past ``limit``."""
        ...

    async def remove(self, username: str, domain: str, contact: str) -> int | None:
        """Delete; returns the new version, or None when there was no such item."""
        ...

    async def changes(self, username: str, domain: str, since: int) -> RosterDelta | None:
        """What changed after version ``since``; None when that is not known any more."""
        ...

    async def put_many(
        self, changes: Sequence[tuple[str, str, RosterItem]], limit: int
    ) -> list[int]:
        """Several items, of one or several accounts (a subscription that changes two
        rosters), in one transaction; the new version of each. RosterFull changes none."""
        ...

    async def forget(self, username: str, domain: str) -> None:
        """The account is gone: its roster, versions and last activity go too."""
        ...


@dataclass(frozen=True, slots=True)
class RosterDelta:
    version: int
    changed: list[tuple[int, RosterItem]]  # (version, item), hidden items included
    removed: list[tuple[int, str]]  # (version, contact)


class RosterFull(Exception):
    pass


_COLUMNS: Final = "contact, name, subscription, ask, groups, pending_in, approved, in_roster"


async def _bump(tx: Executor, username: str, domain: str) -> int:
    version = await tx.fetchval(
        "INSERT INTO roster_versions (domain, username, version) VALUES (?, ?, 1) "
        "ON CONFLICT (domain, username) DO UPDATE SET version = roster_versions.version + 1 "
        "RETURNING version",
        domain,
        username,
    )
    return int(version)


async def _version(db: Executor, username: str, domain: str) -> int:
    version = await db.fetchval(
        "SELECT version FROM roster_versions WHERE domain = ? AND username = ?",
        domain,
        username,
    )
    return int(version) if version is not None else 0


def _item(row: Row) -> RosterItem:
    contact, name, subscription, ask, groups, pending_in, approved, in_roster = tuple(row)[:8]
    return RosterItem(
        str(contact),
        str(name) if name is not None else None,
        str(subscription),
        bool(ask),
        tuple(json.loads(str(groups))),
        bool(pending_in),
        bool(approved),
        bool(in_roster),
    )


async def _prune_tombstones(tx: Executor, username: str, domain: str) -> None:
    """Keep the newest MAX_TOMBSTONES; deltas from before the dropped ones are unknown."""
    dropped = await tx.fetchval(
        "SELECT version FROM roster_removed WHERE domain = ? AND username = ?"
        " ORDER BY version DESC LIMIT 1 OFFSET ?",
        domain,
        username,
        MAX_TOMBSTONES,
    )
    if dropped is None:
        return
    await tx.execute(
        "DELETE FROM roster_removed WHERE domain = ? AND username = ? AND version <= ?",
        domain,
        username,
        dropped,
    )
    await tx.execute(
        "UPDATE roster_versions SET horizon = ? WHERE domain = ? AND username = ?",
        dropped,
        domain,
        username,
    )


async def _put(tx: Executor, username: str, domain: str, item: RosterItem, limit: int) -> int:
    exists = await tx.fetchval(
        "SELECT 1 FROM roster_items WHERE domain = ? AND username = ? AND contact = ?",
        domain,
        username,
        item.contact,
    )
    if exists is None:
        count = await tx.fetchval(
            "SELECT COUNT(*) FROM roster_items WHERE domain = ? AND username = ?",
            domain,
            username,
        )
        if int(count) >= limit:
            raise RosterFull
    version = await _bump(tx, username, domain)
    await tx.execute(
        "DELETE FROM roster_removed WHERE domain = ? AND username = ? AND contact = ?",
        domain,
        username,
        item.contact,
    )
    await tx.execute(
        "INSERT INTO roster_items (domain, username, contact, name, subscription, ask, groups,"
        " pending_in, approved, in_roster, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (domain, username, contact) DO UPDATE SET name = excluded.name,"
        " subscription = excluded.subscription, ask = excluded.ask, groups = excluded.groups,"
        " pending_in = excluded.pending_in, approved = excluded.approved,"
        " in_roster = excluded.in_roster, version = excluded.version",
        domain,
        username,
        item.contact,
        item.name,
        item.subscription,
        int(item.ask),
        json.dumps(list(item.groups)),
        int(item.pending_in),
        int(item.approved),
        int(item.in_roster),
        version,
    )
    return version


class SqlRosterStore(SqlStore):
    """Rosters on either engine. Also owns the schema of `SqlLastActivityStore`'s table
    (one ``roster`` component, as on SQLite before)."""

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": MIGRATIONS,
        "postgresql": POSTGRESQL_MIGRATIONS,
    }

    async def get(self, username: str, domain: str) -> tuple[int, list[RosterItem]]:
        # The version first: the items are at least that new, so a client that later asks
        # for the changes since it gets some again at worst, never misses one.
        version = await _version(self.db, username, domain)
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM roster_items"  # noqa: S608 (a constant)
            " WHERE domain = ? AND username = ? ORDER BY contact",
            domain,
            username,
        )
        return version, [_item(r) for r in rows]

    async def version(self, username: str, domain: str) -> int:
        return await _version(self.db, username, domain)

    async def item(self, username: str, domain: str, contact: str) -> RosterItem | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM roster_items"  # noqa: S608 (a constant)
            " WHERE domain = ? AND username = ? AND contact = ?",
            domain,
            username,
            contact,
        )
        return _item(row) if row is not None else None

    async def put(self, username: str, domain: str, item: RosterItem, limit: int) -> int:
        async with self.db.transaction() as tx:
            return await _put(tx, username, domain, item, limit)

    async def put_many(
        self, changes: Sequence[tuple[str, str, RosterItem]], limit: int
    ) -> list[int]:
        async with self.db.transaction() as tx:
            return [await _put(tx, u, d, item, limit) for u, d, item in changes]

    async def remove(self, username: str, domain: str, contact: str) -> int | None:
        async with self.db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM roster_items WHERE domain = ? AND username = ? AND contact = ?",
                domain,
                username,
                contact,
            )
            if removed == 0:
                return None
            version = await _bump(tx, username, domain)
            await tx.execute(
                "INSERT INTO roster_removed (domain, username, contact, version)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (domain, username, contact)"
                " DO UPDATE SET version = excluded.version",
                domain,
                username,
                contact,
                version,
            )
            await _prune_tombstones(tx, username, domain)
            return version

    async def changes(self, username: str, domain: str, since: int) -> RosterDelta | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "SELECT version, horizon FROM roster_versions WHERE domain = ? AND username = ?",
                domain,
                username,
            )
            version, horizon = (int(row[0]), int(row[1])) if row is not None else (0, 0)
            if not horizon <= since <= version:
                return None
            rows = await tx.fetch(
                f"SELECT {_COLUMNS}, version FROM roster_items"  # noqa: S608 (a constant)
                " WHERE domain = ? AND username = ? AND version > ? ORDER BY version",
                domain,
                username,
                since,
            )
            removed = await tx.fetch(
                "SELECT version, contact FROM roster_removed WHERE domain = ? AND username = ?"
                " AND version > ? ORDER BY version",
                domain,
                username,
                since,
            )
        return RosterDelta(
            version,
            [(int(r[8]), _item(r)) for r in rows],
            [(int(v), str(c)) for v, c in removed],
        )

    async def forget(self, username: str, domain: str) -> None:
        async with self.db.transaction() as tx:
            for table in ("roster_items", "roster_removed", "roster_versions", "last_activity"):
                await tx.execute(
                    f"DELETE FROM {table} WHERE domain = ? AND username = ?",  # noqa: S608
                    domain,
                    username,
                )


class LastActivityStore(Protocol):
    async def set(self, username: str, domain: str, at: float, status: str) -> None:
        """Remember the account's last logout (written within LAST_FLUSH_S)."""
        ...

    async def get(self, username: str, domain: str) -> tuple[float, str] | None:
        """The last logout and its status text, pending writes included."""
        ...

    async def forget(self, username: str, domain: str) -> None:
        """The account is gone: so is its last activity."""
        ...

    async def close(self) -> None:
        """Write what is pending."""
        ...


LastRow = tuple[str, str, float, str]  # domain, username, at, status


class SqlLastActivityStore(SqlStore):
    """When each account last went offline (XEP-0012), and its last status text.

    Written behind (a logout is worth a batch, not a round trip of its own); the table is
    created by `SqlRosterStore`'s migrations, so this store declares none.
    """

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": (),
        "postgresql": (),
    }

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._queue: WriteBehind[LastRow] = WriteBehind(
            self._write, delay_s=LAST_FLUSH_S, max_rows=LAST_FLUSH_ROWS, what="last activity"
        )

    async def _write(self, rows: list[LastRow]) -> None:
        latest = {(d, u): (d, u, at, status) for d, u, at, status in rows}  # the last one wins
        async with self.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO last_activity (domain, username, at, status) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (domain, username) DO UPDATE SET at = excluded.at,"
                " status = excluded.status",
                list(latest.values()),
            )

    async def set(self, username: str, domain: str, at: float, status: str) -> None:
        await self._queue.add((domain, username, at, status))

    async def get(self, username: str, domain: str) -> tuple[float, str] | None:
        for d, u, at, status in reversed(self._queue.pending()):
            if (d, u) == (domain, username):
                return at, status
        row = await self.db.fetchrow(
            "SELECT at, status FROM last_activity WHERE domain = ? AND username = ?",
            domain,
            username,
        )
        return (float(row[0]), str(row[1])) if row is not None else None

    async def forget(self, username: str, domain: str) -> None:
        """Drop a pending write of a deleted account (the row goes with the roster)."""
        await self._queue.flush()
        await self.db.execute(
            "DELETE FROM last_activity WHERE domain = ? AND username = ?", domain, username
        )

    async def close(self) -> None:
        await self._queue.close()
