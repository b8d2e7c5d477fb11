"""The blocking store (XEP-0191 lists, XEP-0377 reports) on both engines: blocked, unblocked,
all or none, the per-account limit, unicode and 64 KiB payloads, blocklists gone with their
account while reports stay, kept across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.blocking.store import Change, ListFull, Report, SqlBlockingStore
from heron.storage.db import Database
from tests.engines import ENGINES
from tests.storage.owned import ALICE, BIG, BOB, add_accounts, delete_account, place, reopen


@pytest.fixture(params=ENGINES)
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return place(request.param, tmp_path, request)


@pytest.fixture
async def db(where: str) -> AsyncIterator[Database]:
    database = await reopen(where, [SqlBlockingStore])
    await add_accounts(database, ALICE, BOB)
    try:
        yield database
    finally:
        await database.close()


def report(reported: str, text: str = "ads", at: float = 1.0) -> Report:
    return Report(str(ALICE), reported, "urn:xmpp:reporting:spam", text, ("a m-1", "b m-2"), at)


async def test_block_unblock_and_unblock_all(db: Database) -> None:
    store = SqlBlockingStore(db)
    assert await store.blocked(ALICE) == set()
    await store.change(ALICE, Change(add=["spam.example", "eve@example.net", "eve@example.net"]))
    await store.change(BOB, Change(add=["eve@example.net/phone"]))
    await store.change(ALICE, Change(add=["mallory@example.net"], remove=["spam.example"]))
    assert await store.blocked(ALICE) == {"eve@example.net", "mallory@example.net"}
    await store.change(ALICE, Change(remove_all=True))
    assert await store.blocked(ALICE) == set()
    assert await store.blocked(BOB) == {"eve@example.net/phone"}


async def test_the_limit_refuses_the_whole_change(db: Database) -> None:
    store = SqlBlockingStore(db)
    await store.change(ALICE, Change(add=["a@x", "b@x"]), 3)
    with pytest.raises(ListFull):
        await store.change(ALICE, Change(add=["c@x", "d@x"], reports=[report("c@x")]), 3)
    assert await store.blocked(ALICE) == {"a@x", "b@x"}  # all or none
    assert await store.reports("example.org") == []
    await store.change(ALICE, Change(add=["a@x", "c@x"]), 3)  # a duplicate takes no room
    assert await store.blocked(ALICE) == {"a@x", "b@x", "c@x"}


async def test_reports_in_order_per_domain_unicode_and_large(db: Database) -> None:
    store = SqlBlockingStore(db)
    big = report("eve@example.net", text=BIG, at=2.5)
    await store.change(ALICE, Change(add=["eve@example.net"], reports=[report("z@x"), big]))
    await store.change(
        ALICE, Change(add=["ü@例え.jp"], reports=[report("ü@例え.jp", text="🐦 spam")])
    )
    got = await store.reports("example.org")
    assert [r.reported for r in got] == ["z@x", "eve@example.net", "ü@例え.jp"]
    assert got[1] == big
    assert got[2].text == "🐦 spam"
    assert await store.reports("example.net") == []


async def test_blocklist_goes_with_the_account_reports_stay(db: Database) -> None:
    store = SqlBlockingStore(db)
    await store.change(ALICE, Change(add=["eve@example.net"], reports=[report("eve@example.net")]))
    await store.change(BOB, Change(add=["eve@example.net"]))
    await delete_account(db, ALICE)
    assert await store.blocked(ALICE) == set()
    assert await store.blocked(BOB) == {"eve@example.net"}
    assert [r.reported for r in await store.reports("example.org")] == ["eve@example.net"]


async def test_kept_across_a_restart(db: Database, where: str) -> None:
    await SqlBlockingStore(db).change(
        ALICE, Change(add=["eve@example.net"], reports=[report("e@x")])
    )
    await db.close()
    again = await reopen(where, [SqlBlockingStore])
    try:
        store = SqlBlockingStore(again)
        assert await store.blocked(ALICE) == {"eve@example.net"}
        assert [r.reported for r in await store.reports("example.org")] == ["e@x"]
        await store.change(ALICE, Change(reports=[report("f@x")]))  # ids go on growing
        assert [r.reported for r in await store.reports("example.org")] == ["e@x", "f@x"]
    finally:
        await again.close()
