"""The upload store (XEP-0363 slots and quotas) on both engines: slots added, found per
service, marked uploaded; usage summed per owner; expiry of old files, unused slots and
slots whose account is gone; an owner's slots forgotten; unicode names; kept across a
restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.upload.store import Slot, SqlUploadStore
from heron.storage.db import Database
from tests.engines import ENGINES
from tests.storage.owned import ALICE, BOB, add_accounts, delete_account, place, reopen

SERVICE = "upload.example.org"


@pytest.fixture(params=ENGINES)
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return place(request.param, tmp_path, request)


@pytest.fixture
async def db(where: str) -> AsyncIterator[Database]:
    database = await reopen(where, [SqlUploadStore])
    await add_accounts(database, ALICE, BOB)
    try:
        yield database
    finally:
        await database.close()


def slot(name: str, owner: str = str(ALICE), size: int = 10, created: float = 1000.0) -> Slot:
    return Slot(name, owner, f"{name}.png", size, "image/png", created, False)


async def test_added_found_and_marked_uploaded(db: Database) -> None:
    store = SqlUploadStore(db)
    await store.add(SERVICE, slot("s1"))
    assert await store.find(SERVICE, "s1") == slot("s1")
    assert await store.find("upload.example.net", "s1") is None  # another service's
    assert await store.find(SERVICE, "nope") is None
    await store.mark_uploaded("s1")
    found = await store.find(SERVICE, "s1")
    assert found is not None
    assert found.uploaded


async def test_usage_is_per_owner_across_services(db: Database) -> None:
    store = SqlUploadStore(db)
    assert await store.usage(str(ALICE)) == (0, None)
    big = 5 * 1024**3  # past 32 bits
    await store.add(SERVICE, slot("a", size=big, created=2000.0))
    await store.add("upload.other", slot("b", size=7, created=1500.5))
    await store.add(SERVICE, slot("c", owner=str(BOB), size=3))
    assert await store.usage(str(ALICE)) == (big + 7, 1500.5)


async def test_expiry_takes_old_files_unused_slots_and_orphans(db: Database) -> None:
    store = SqlUploadStore(db)
    await store.add(SERVICE, slot("old", created=100.0))
    await store.add(SERVICE, slot("unused", created=900.0))
    await store.add(SERVICE, slot("kept", created=900.0))
    await store.mark_uploaded("kept")
    await store.add(SERVICE, slot("fresh", created=990.0))
    await store.add(SERVICE, slot("bobs", owner=str(BOB), created=990.0))
    await store.add("upload.other", slot("elsewhere", created=1.0))
    gone = await store.expired(SERVICE, kept_until=500.0, unused_until=950.0)
    assert sorted(s.slot for s in gone) == ["old", "unused"]
    await delete_account(db, BOB)  # no key can point at a bare JID: the sweep finds them
    gone = await store.expired(SERVICE, kept_until=500.0, unused_until=950.0)
    assert [s.slot for s in gone] == ["bobs"]
    assert await store.find(SERVICE, "kept") is not None
    assert await store.find(SERVICE, "fresh") is not None
    assert await store.find("upload.other", "elsewhere") is not None


async def test_forgetting_an_owner_returns_their_slots(db: Database) -> None:
    store = SqlUploadStore(db)
    await store.add(SERVICE, slot("a"))
    await store.add(SERVICE, slot("b", owner=str(BOB)))
    await store.add("upload.other", slot("c"))
    assert [s.slot for s in await store.forget_owner(SERVICE, str(ALICE))] == ["a"]
    assert await store.find(SERVICE, "b") is not None
    assert await store.find("upload.other", "c") is not None


async def test_unicode_names_and_types(db: Database) -> None:
    store = SqlUploadStore(db)
    odd = Slot("s", str(ALICE), "鷺 🐦 " + "ü" * 190, 1, "text/plain; charset=utf-8", 1.5, False)
    await store.add(SERVICE, odd)
    assert await store.find(SERVICE, "s") == odd


async def test_kept_across_a_restart(db: Database, where: str) -> None:
    await SqlUploadStore(db).add(SERVICE, slot("s1"))
    await db.close()
    again = await reopen(where, [SqlUploadStore])
    try:
        assert await SqlUploadStore(again).find(SERVICE, "s1") == slot("s1")
    finally:
        await again.close()
