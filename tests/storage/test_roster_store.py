"""Roster storage: per-item versions and tombstones give exact deltas (XEP-0237)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.roster.store import (
    MAX_TOMBSTONES,
    MIGRATIONS,
    RosterFull,
    RosterItem,
    SqlRosterStore,
)
from heron.storage.sqlite import SqliteDatabase


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlRosterStore]:
    db = await SqliteDatabase.open(tmp_path / "heron.db")
    await db.migrate(MIGRATIONS)
    try:
        yield SqlRosterStore(db)
    finally:
        await db.close()


async def test_changes_since_a_version(store: SqlRosterStore) -> None:
    v1 = await store.put("u", "h", RosterItem("a@h"), 10)
    await store.put("u", "h", RosterItem("b@h"), 10)
    v3 = await store.put("u", "h", RosterItem("a@h", name="A"), 10)
    v4 = await store.remove("u", "h", "b@h")
    delta = await store.changes("u", "h", v1)
    assert delta is not None
    assert delta.version == v4
    assert [(v, i.contact, i.name) for v, i in delta.changed] == [(v3, "a@h", "A")]
    assert delta.removed == [(v4, "b@h")]
    assert await store.changes("u", "h", v4 + 1) is None  # a version from the future
    # Adding a removed contact again replaces its tombstone.
    await store.put("u", "h", RosterItem("b@h"), 10)
    again = await store.changes("u", "h", v1)
    assert again is not None
    assert again.removed == []


async def test_old_versions_are_forgotten_past_the_tombstone_cap(store: SqlRosterStore) -> None:
    first = await store.put("u", "h", RosterItem("keep@h"), 10)
    for n in range(MAX_TOMBSTONES + 1):
        await store.put("u", "h", RosterItem(f"c{n}@h"), 10)
        await store.remove("u", "h", f"c{n}@h")
    assert await store.changes("u", "h", first) is None  # the client gets the full roster
    latest = await store.version("u", "h")
    recent = await store.changes("u", "h", latest - 2)
    assert recent is not None
    assert len(recent.removed) == 1


async def test_item_limit(store: SqlRosterStore) -> None:
    await store.put("u", "h", RosterItem("a@h"), 1)
    await store.put("u", "h", RosterItem("a@h", name="renamed"), 1)  # replacing is fine
    with pytest.raises(RosterFull):
        await store.put("u", "h", RosterItem("b@h"), 1)
