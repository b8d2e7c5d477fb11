"""Roster storage on both engines: per-item versions and tombstones give exact deltas
(XEP-0237), limits, several rosters in one transaction, account removal, last activity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.roster.store import (
    MAX_TOMBSTONES,
    RosterFull,
    RosterItem,
    SqlLastActivityStore,
    SqlRosterStore,
)
from heron.storage.db import Database
from tests.engines import ENGINES, open_store_db
from tests.storage.durable import reopenable


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_store_db(request.param, tmp_path, request, [SqlRosterStore])
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def store(db: Database) -> SqlRosterStore:
    return SqlRosterStore(db)


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


async def test_items_are_read_back_with_unicode_and_groups(store: SqlRosterStore) -> None:
    item = RosterItem(
        "ümlaut@h", name="Jürgen 🐦" * 100, subscription="both", groups=("Ω", "家族"), approved=True
    )
    version = await store.put("u", "h", item, 10)
    assert await store.item("u", "h", "ümlaut@h") == item
    assert await store.get("u", "h") == (version, [item])
    assert await store.item("u", "h", "nobody@h") is None
    assert await store.get("other", "h") == (0, [])
    assert await store.remove("u", "h", "nobody@h") is None


async def test_a_subscription_changes_two_rosters_or_none(store: SqlRosterStore) -> None:
    both = [("a", "h", RosterItem("b@h", subscription="to")), ("b", "h", RosterItem("a@h"))]
    assert await store.put_many(both, 10) == [1, 1]
    await store.put("c", "h", RosterItem("x@h"), 1)
    with pytest.raises(RosterFull):  # c's roster is full: a's item is not written either
        await store.put_many([("a", "h", RosterItem("c@h")), ("c", "h", RosterItem("a@h"))], 1)
    assert [i.contact for i in (await store.get("a", "h"))[1]] == ["b@h"]
    assert await store.version("a", "h") == 1


async def test_two_writers_at_once_get_distinct_versions(store: SqlRosterStore) -> None:
    versions = await asyncio.gather(
        *(store.put("u", "h", RosterItem(f"c{n}@h"), 100) for n in range(40))
    )
    assert sorted(versions) == list(range(1, 41))
    assert len((await store.get("u", "h"))[1]) == 40


async def test_removing_an_account_forgets_its_roster_only(store: SqlRosterStore) -> None:
    last = SqlLastActivityStore(store.db)
    await store.put("gone", "h", RosterItem("a@h"), 10)
    await store.put("gone", "h", RosterItem("b@h"), 10)
    await store.remove("gone", "h", "b@h")
    await store.put("stays", "h", RosterItem("gone@h"), 10)
    await last.set("gone", "h", 5.0, "bye")
    await last.close()
    await store.forget("gone", "h")
    await last.forget("gone", "h")
    assert await store.get("gone", "h") == (0, [])
    assert await store.changes("gone", "h", 0) is not None  # a fresh roster, nothing removed
    assert await last.get("gone", "h") is None
    assert [i.contact for i in (await store.get("stays", "h"))[1]] == ["gone@h"]


async def test_last_activity_is_written_behind_and_read_through(
    db: Database, store: SqlRosterStore
) -> None:
    last = SqlLastActivityStore(db)
    await last.set("u", "h", 10.0, "first")
    await last.set("u", "h", 20.0, "später ✈")
    assert await last.get("u", "h") == (20.0, "später ✈")  # pending, yet read
    await last.close()
    assert await SqlLastActivityStore(db).get("u", "h") == (20.0, "später ✈")
    assert await last.get("v", "h") is None


@pytest.mark.parametrize("engine", ENGINES)
async def test_rosters_survive_close_and_reopen(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    opener = reopenable(engine, tmp_path, request, [SqlRosterStore])
    db = await opener()
    last = SqlLastActivityStore(db)
    try:
        await SqlRosterStore(db).put("u", "h", RosterItem("a@h", name="A"), 10)
        await last.set("u", "h", 7.5, "away")  # written on close
    finally:
        await last.close()
        await db.close()
    db = await opener()
    try:
        assert await SqlRosterStore(db).get("u", "h") == (1, [RosterItem("a@h", name="A")])
        assert await SqlLastActivityStore(db).get("u", "h") == (7.5, "away")
    finally:
        await db.close()
