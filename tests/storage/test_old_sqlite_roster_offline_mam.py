"""A heron.db written before the roster, offline and archive stores were engine-neutral
opens and keeps working: the same tables, the rows those modules wrote read back, and new
rows continue after them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from heron.modules.mam.store import MIGRATIONS as MAM
from heron.modules.mam.store import ArchiveRow, Query, SqlArchiveStore
from heron.modules.offline.store import MIGRATIONS as OFFLINE
from heron.modules.offline.store import SqlOfflineStore
from heron.modules.roster.store import MIGRATIONS as ROSTER
from heron.modules.roster.store import RosterItem, SqlLastActivityStore, SqlRosterStore
from heron.storage.sqlite import SqliteDatabase


def old_database(path: Path) -> None:
    """What the modules created and wrote with their own SQL (schema_versions included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        for migration in (*ROSTER, *OFFLINE, *MAM):
            conn.executescript(migration.sql)
            conn.execute(
                "INSERT OR REPLACE INTO schema_versions VALUES (?, ?)",
                (migration.component, migration.version),
            )
        conn.execute(
            "INSERT OR REPLACE INTO roster_items (domain, username, contact, name, subscription,"
            " ask, groups, pending_in, approved, in_roster, version)"
            " VALUES ('h', 'u', 'a@h', 'A', 'both', 0, '[\"Friends\"]', 0, 0, 1, 1)"
        )
        conn.execute(
            "INSERT INTO roster_versions (domain, username, version, horizon)"
            " VALUES ('h', 'u', 1, 0)"
        )
        conn.execute("INSERT OR REPLACE INTO last_activity VALUES ('h', 'u', 12.5, 'gone')")
        conn.execute(
            "INSERT INTO offline_messages (domain, username, xml) VALUES ('h', 'u', '<message/>')"
        )
        conn.execute(
            "INSERT INTO mam_messages (archive_id, domain, username, with_jid, at, xml)"
            " VALUES ('old1', 'h', 'u', 'a@h', 100.0, '<message><body>old</body></message>')"
        )
        conn.execute("INSERT OR REPLACE INTO mam_prefs VALUES ('h', 'u', 'roster')")


async def test_an_old_database_opens_and_is_read_and_extended(tmp_path: Path) -> None:
    path = tmp_path / "data" / "heron.db"
    old_database(path)
    db = await SqliteDatabase.open(path)
    try:
        for store in (SqlRosterStore, SqlOfflineStore, SqlArchiveStore):
            await db.migrate(store.migrations_for("sqlite"))  # nothing left to do, no error
        roster = SqlRosterStore(db)
        assert await roster.get("u", "h") == (
            1,
            [RosterItem("a@h", name="A", subscription="both", groups=("Friends",))],
        )
        assert await roster.put("u", "h", RosterItem("b@h"), 10) == 2
        assert await SqlLastActivityStore(db).get("u", "h") == (12.5, "gone")
        assert await SqlOfflineStore(db).fetch("u", "h") == [(1, "<message/>")]
        archive = SqlArchiveStore(db)
        assert await archive.mode("h", "u") == "roster"
        await archive.append(
            ArchiveRow("new1", "h", "u", "a@h", 200.0, "<message><body>new</body></message>")
        )
        page = await archive.query("h", "u", Query())
        assert [a for a, _, _ in page.rows] == ["old1", "new1"]
        await archive.close()
    finally:
        await db.close()
