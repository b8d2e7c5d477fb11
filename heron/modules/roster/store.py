"""Roster storage: one row per contact, a version counter per user (XEP-0237).

Each row remembers the version that last changed it and removals leave a tombstone, so a
client that knows version N can be sent just what changed since (RFC 6121 §2.6). Deltas are
complete from a user's ``horizon`` on: tombstones past ``MAX_TOMBSTONES`` are dropped and
the horizon moves up, and a client older than that gets the whole roster again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Final, Protocol

from heron.storage.sqlite import Migration, SqliteDatabase, transaction

MIGRATIONS: Final = (
    Migration(
        "roster",
        1,
        """
        CREATE TABLE roster_items (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            contact TEXT NOT NULL,
            name TEXT,
            subscription TEXT NOT NULL DEFAULT 'none',
            ask INTEGER NOT NULL DEFAULT 0,
            groups TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (domain, username, contact)
        );
        CREATE TABLE roster_versions (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (domain, username)
        );
        """,
    ),
    Migration(
        "roster",
        2,
        """
        ALTER TABLE roster_items ADD COLUMN pending_in INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE roster_items ADD COLUMN approved INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE roster_items ADD COLUMN in_roster INTEGER NOT NULL DEFAULT 1;
        """,
    ),
    Migration(
        "roster",
        3,
        """
        CREATE TABLE last_activity (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (domain, username)
        );
        """,
    ),
    Migration(
        "roster",
        4,
        """
        ALTER TABLE roster_items ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE roster_versions ADD COLUMN horizon INTEGER NOT NULL DEFAULT 0;
        UPDATE roster_versions SET horizon = version;
        CREATE TABLE roster_removed (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            contact TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (domain, username, contact)
        );
        """,
    ),
)
MAX_TOMBSTONES: Final = 500


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


@dataclass(frozen=True, slots=True)
class RosterDelta:
    version: int
    changed: list[tuple[int, RosterItem]]  # (version, item), hidden items included
    removed: list[tuple[int, str]]  # (version, contact)


class RosterFull(Exception):
    pass


def _bump(conn: sqlite3.Connection, username: str, domain: str) -> int:
    conn.execute(
        "INSERT INTO roster_versions (domain, username, version) VALUES (?, ?, 1) "
        "ON CONFLICT(domain, username) DO UPDATE SET version = version + 1",
        (domain, username),
    )
    row = conn.execute(
        "SELECT version FROM roster_versions WHERE domain = ? AND username = ?",
        (domain, username),
    ).fetchone()
    return int(row[0])


def _version(conn: sqlite3.Connection, username: str, domain: str) -> int:
    row = conn.execute(
        "SELECT version FROM roster_versions WHERE domain = ? AND username = ?",
        (domain, username),
    ).fetchone()
    return int(row[0]) if row else 0


def _item(row: tuple[object, ...]) -> RosterItem:
    contact, name, subscription, ask, groups, pending_in, approved, in_roster = row
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


def _prune_tombstones(conn: sqlite3.Connection, username: str, domain: str) -> None:
    """Keep the newest MAX_TOMBSTONES; deltas from before the dropped ones are unknown."""
    dropped = conn.execute(
        "SELECT MAX(version) FROM (SELECT version FROM roster_removed"
        " WHERE domain = ? AND username = ? ORDER BY version DESC LIMIT -1 OFFSET ?)",
        (domain, username, MAX_TOMBSTONES),
    ).fetchone()[0]
    if dropped is None:
        return
    conn.execute(
        "DELETE FROM roster_removed WHERE domain = ? AND username = ? AND version <= ?",
        (domain, username, dropped),
    )
    conn.execute(
        "UPDATE roster_versions SET horizon = ? WHERE domain = ? AND username = ?",
        (dropped, domain, username),
    )


class SqlRosterStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def get(self, username: str, domain: str) -> tuple[int, list[RosterItem]]:
        def read(conn: sqlite3.Connection) -> tuple[int, list[RosterItem]]:
            rows = conn.execute(
                "SELECT contact, name, subscription, ask, groups, pending_in, approved, in_roster"
                " FROM roster_items "
                "WHERE domain = ? AND username = ? ORDER BY contact",
                (domain, username),
            ).fetchall()
            return _version(conn, username, domain), [_item(r) for r in rows]

        return await self.db.run(read)

    async def version(self, username: str, domain: str) -> int:
        return await self.db.run(lambda conn: _version(conn, username, domain))

    async def item(self, username: str, domain: str, contact: str) -> RosterItem | None:
        def read(conn: sqlite3.Connection) -> RosterItem | None:
            row = conn.execute(
                "SELECT contact, name, subscription, ask, groups, pending_in, approved, in_roster"
                " FROM roster_items WHERE domain = ? AND username = ? AND contact = ?",
                (domain, username, contact),
            ).fetchone()
            return _item(row) if row else None

        return await self.db.run(read)

    async def put(self, username: str, domain: str, item: RosterItem, limit: int) -> int:
        def write(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                exists = conn.execute(
                    "SELECT 1 FROM roster_items WHERE domain = ? AND username = ? AND contact = ?",
                    (domain, username, item.contact),
                ).fetchone()
                if exists is None:
                    (count,) = conn.execute(
                        "SELECT COUNT(*) FROM roster_items WHERE domain = ? AND username = ?",
                        (domain, username),
                    ).fetchone()
                    if count >= limit:
                        raise RosterFull
                version = _bump(conn, username, domain)
                conn.execute(
                    "DELETE FROM roster_removed WHERE domain = ? AND username = ? AND contact = ?",
                    (domain, username, item.contact),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO roster_items (domain, username, contact, name,"
                    " subscription, ask, groups, pending_in, approved, in_roster, version)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
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
                    ),
                )
                return version

        return await self.db.run(write)

    async def remove(self, username: str, domain: str, contact: str) -> int | None:
        def write(conn: sqlite3.Connection) -> int | None:
            with transaction(conn):
                cur = conn.execute(
                    "DELETE FROM roster_items WHERE domain = ? AND username = ? AND contact = ?",
                    (domain, username, contact),
                )
                if cur.rowcount == 0:
                    return None
                version = _bump(conn, username, domain)
                conn.execute(
                    "INSERT OR REPLACE INTO roster_removed (domain, username, contact, version)"
                    " VALUES (?, ?, ?, ?)",
                    (domain, username, contact, version),
                )
                _prune_tombstones(conn, username, domain)
                return version

        return await self.db.run(write)

    async def changes(self, username: str, domain: str, since: int) -> RosterDelta | None:
        def read(conn: sqlite3.Connection) -> RosterDelta | None:
            row = conn.execute(
                "SELECT version, horizon FROM roster_versions WHERE domain = ? AND username = ?",
                (domain, username),
            ).fetchone()
            version, horizon = (int(row[0]), int(row[1])) if row else (0, 0)
            if not horizon <= since <= version:
                return None
            rows = conn.execute(
                "SELECT contact, name, subscription, ask, groups, pending_in, approved,"
                " in_roster, version FROM roster_items"
                " WHERE domain = ? AND username = ? AND version > ?"
                " ORDER BY version",
                (domain, username, since),
            ).fetchall()
            removed = conn.execute(
                "SELECT version, contact FROM roster_removed WHERE domain = ? AND username = ?"
                " AND version > ? ORDER BY version",
                (domain, username, since),
            ).fetchall()
            return RosterDelta(
                version,
                [(int(r[8]), _item(r[:8])) for r in rows],
                [(int(v), str(c)) for v, c in removed],
            )

        return await self.db.run(read)


class SqlLastActivityStore:
    """When each account last went offline (XEP-0012), and its last status text."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def set(self, username: str, domain: str, at: float, status: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT OR REPLACE INTO last_activity (domain, username, at, status)"
                    " VALUES (?, ?, ?, ?)",
                    (domain, username, at, status),
                )

        await self.db.run(write)

    async def get(self, username: str, domain: str) -> tuple[float, str] | None:
        def read(conn: sqlite3.Connection) -> tuple[float, str] | None:
            row = conn.execute(
                "SELECT at, status FROM last_activity WHERE domain = ? AND username = ?",
                (domain, username),
            ).fetchone()
            return (float(row[0]), str(row[1])) if row else None

        return await self.db.run(read)
