"""The message archive (mam/store.py) on both engines: written behind yet read at once,
ids in archive order, RSM paging both ways over 10,000 rows, filters and limits, two
writers at once, unicode and 64 KiB payloads, account removal, restart persistence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.mam.store import FLUSH_ROWS, ArchiveRow, Query, SqlArchiveStore, UnknownId
from tests.engines import ENGINES, open_store_db
from tests.storage.durable import reopenable


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlArchiveStore]:
    db = await open_store_db(request.param, tmp_path, request, [SqlArchiveStore])
    made = SqlArchiveStore(db)
    try:
        yield made
    finally:
        await made.close()
        await db.close()


def row(n: int, user: str = "u", with_jid: str = "c@h", at: float | None = None) -> ArchiveRow:
    return ArchiveRow(
        f"{n:08d}-{user}",
        "h",
        user,
        with_jid,
        1000.0 + n if at is None else at,
        f"<message xmlns='jabber:client'><body>{n}</body></message>",
    )


async def test_what_was_queued_is_read_at_once_in_order(store: SqlArchiveStore) -> None:
    for n in range(5):
        await store.append(row(n))
    page = await store.query("h", "u", Query(max=10))
    assert [a for a, _, _ in page.rows] == [row(n).archive_id for n in range(5)]
    assert page.complete
    assert page.rows[0] == (row(0).archive_id, 1000.0, row(0).xml)
    assert await store.lookup("h", "u", row(3).archive_id) == row(3).xml
    assert await store.lookup("h", "other", row(3).archive_id) is None
    assert await store.ends("h", "u") == ((row(0).archive_id, 1000.0), (row(4).archive_id, 1004.0))
    assert await store.ends("h", "nobody") == (None, None)


async def test_paging_over_10000_rows_both_ways(store: SqlArchiveStore) -> None:
    total = 10_000
    for n in range(total):
        await store.append(row(n, with_jid=f"c{n % 3}@h"))
    expected = [row(n).archive_id for n in range(total)]
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await store.query("h", "u", Query(max=250, after_id=after))
        seen += [a for a, _, _ in page.rows]
        if page.complete:
            break
        after = page.rows[-1][0]
    assert seen == expected
    # Backwards from the end (RSM <before/>), each page in archive order.
    back: list[str] = []
    before: str | None = None
    while True:
        page = await store.query("h", "u", Query(max=999, before_id=before, backwards=True))
        back = [a for a, _, _ in page.rows] + back
        if page.complete:
            break
        before = page.rows[0][0]
    assert back == expected
    # Filters: a correspondent, a time window, a list of ids; counts where cheap.
    page = await store.query("h", "u", Query(with_jid="c1@h", max=5))
    assert [a for a, _, _ in page.rows] == [row(n).archive_id for n in (1, 4, 7, 10, 13)]
    assert page.count == 3333
    page = await store.query("h", "u", Query(start=1100.0, end=1104.5, max=50))
    assert [a for a, _, _ in page.rows] == [row(n).archive_id for n in range(100, 105)]
    assert page.count == 5
    ids = (row(9999).archive_id, row(0).archive_id)
    assert [a for a, _, _ in (await store.query("h", "u", Query(ids=ids))).rows] == [
        ids[1],
        ids[0],
    ]


async def test_limits_and_unknown_ids(store: SqlArchiveStore) -> None:
    for n in range(3):
        await store.append(row(n))
    empty = await store.query("h", "u", Query(max=0))
    assert empty.rows == []
    assert not empty.complete
    assert len((await store.query("h", "u", Query(max=2))).rows) == 2
    with pytest.raises(UnknownId):
        await store.query("h", "u", Query(after_id="no-such-id"))
    await store.append(row(9, user="v"))
    with pytest.raises(UnknownId):  # another archive's id is unknown here too
        await store.query("h", "u", Query(before_id=row(9, user="v").archive_id))


async def test_two_writers_at_once_keep_each_archive_in_order(
    store: SqlArchiveStore,
) -> None:
    other = SqlArchiveStore(store.db)  # a second writer on the same database

    async def write(target: SqlArchiveStore, user: str) -> None:
        for n in range(FLUSH_ROWS * 2 + 7):
            await target.append(row(n, user=user))
            if n % 100 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(write(store, "a"), write(other, "b"), write(store, "c"))
    await other.close()
    for user in ("a", "b", "c"):
        page = await store.query("h", user, Query(max=5000))
        assert [a for a, _, _ in page.rows] == [
            row(n, user=user).archive_id for n in range(FLUSH_ROWS * 2 + 7)
        ]


async def test_unicode_and_64_kib_payloads_and_replacement(store: SqlArchiveStore) -> None:
    big = ArchiveRow(
        "big", "h", "ü", "ß@h", 1.0, "<message><body>" + "🐦ä" * 32768 + "</body></message>"
    )
    await store.append(big)
    assert await store.lookup("h", "ü", "big") == big.xml
    assert (await store.query("h", "ü", Query(with_jid="ß@h"))).rows == [("big", 1.0, big.xml)]
    assert await store.replace("h", "ü", "big", "<message><retracted/></message>")
    assert not await store.replace("h", "ü", "none", "<message/>")
    assert await store.lookup("h", "ü", "big") == "<message><retracted/></message>"


async def test_preferences(store: SqlArchiveStore) -> None:
    assert await store.mode("h", "u") is None
    await store.set_mode("h", "u", "roster")
    await store.set_mode("h", "u", "never")
    assert await store.mode("h", "u") == "never"
    assert await store.rules("h", "u") == ([], [])
    await store.set_rules("h", "u", ["b@h", "a@h"], ["c@h/r"])
    assert await store.rules("h", "u") == (["a@h", "b@h"], ["c@h/r"])
    await store.set_rules("h", "u", [], ["a@h"])  # replaced as a whole
    assert await store.rules("h", "u") == ([], ["a@h"])


async def test_removing_an_account_forgets_its_archive(store: SqlArchiveStore) -> None:
    await store.append(row(1, user="gone"))
    await store.set_mode("h", "gone", "never")
    await store.set_rules("h", "gone", ["x@h"], [])
    await store.append(row(2, user="stays"))
    await store.forget("h", "gone")
    assert (await store.query("h", "gone", Query())).rows == []
    assert await store.mode("h", "gone") is None
    assert await store.rules("h", "gone") == ([], [])
    assert len((await store.query("h", "stays", Query())).rows) == 1


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_archive_survives_close_and_reopen(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    opener = reopenable(engine, tmp_path, request, [SqlArchiveStore])
    db = await opener()
    store = SqlArchiveStore(db)
    for n in range(3):
        await store.append(row(n))  # queued: written by close
    await store.close()
    await db.close()
    db = await opener()
    store = SqlArchiveStore(db)
    try:
        await store.append(row(3))
        page = await store.query("h", "u", Query())
        assert [a for a, _, _ in page.rows] == [row(n).archive_id for n in range(4)]
    finally:
        await store.close()
        await db.close()
