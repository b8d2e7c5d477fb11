"""The push store (XEP-0357 app servers) on both engines: enabled, replaced, disabled by
node or whole service, the per-account limit, unicode and 64 KiB options, gone with the
account, kept across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.modules.push import Registration, SqlPushStore, TooMany
from heron.storage.db import Database
from tests.engines import ENGINES
from tests.storage.owned import ALICE, BIG, BOB, add_accounts, delete_account, place, reopen


@pytest.fixture(params=ENGINES)
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return place(request.param, tmp_path, request)


@pytest.fixture
async def db(where: str) -> AsyncIterator[Database]:
    database = await reopen(where, [SqlPushStore])
    await add_accounts(database, ALICE, BOB)
    try:
        yield database
    finally:
        await database.close()


def sorted_of(registrations: list[Registration]) -> list[Registration]:
    return sorted(registrations, key=lambda r: (r.service, r.node))


async def test_enable_replace_disable(db: Database) -> None:
    store = SqlPushStore(db)
    assert await store.registrations(ALICE) == []
    await store.enable(ALICE, Registration("push.example", "n1", None), limit=5)
    await store.enable(ALICE, Registration("push.example", "n2", "<x/>"), limit=5)
    await store.enable(ALICE, Registration("other.example", "n1", None), limit=5)
    await store.enable(ALICE, Registration("push.example", "n1", "<secret/>"), limit=5)
    await store.enable(BOB, Registration("push.example", "n1", None), limit=5)
    assert sorted_of(await store.registrations(ALICE)) == [
        Registration("other.example", "n1", None),
        Registration("push.example", "n1", "<secret/>"),
        Registration("push.example", "n2", "<x/>"),
    ]
    await store.disable(ALICE, "push.example", "n2")
    assert len(await store.registrations(ALICE)) == 2
    await store.disable(ALICE, "push.example", None)  # every node of that service
    assert await store.registrations(ALICE) == [Registration("other.example", "n1", None)]
    assert await store.registrations(BOB) == [Registration("push.example", "n1", None)]


async def test_the_limit_counts_app_servers_not_replacements(db: Database) -> None:
    store = SqlPushStore(db)
    for node in ("a", "b"):
        await store.enable(ALICE, Registration("push.example", node, None), limit=2)
    with pytest.raises(TooMany):
        await store.enable(ALICE, Registration("push.example", "c", None), limit=2)
    await store.enable(ALICE, Registration("push.example", "b", "<new/>"), limit=2)
    assert sorted_of(await store.registrations(ALICE)) == [
        Registration("push.example", "a", None),
        Registration("push.example", "b", "<new/>"),
    ]


async def test_unicode_and_64_kib_options(db: Database) -> None:
    store = SqlPushStore(db)
    form = f"<x xmlns='jabber:x:data'><field var='secret'><value>{BIG}</value></field></x>"
    await store.enable(ALICE, Registration("pübsub.例え.jp", "nœud 🐦", form), limit=5)
    assert await store.registrations(ALICE) == [Registration("pübsub.例え.jp", "nœud 🐦", form)]


async def test_registrations_go_with_the_account(db: Database) -> None:
    store = SqlPushStore(db)
    for account in (ALICE, BOB):
        await store.enable(account, Registration("push.example", "n", None), limit=5)
    await delete_account(db, ALICE)
    assert await store.registrations(ALICE) == []
    assert len(await store.registrations(BOB)) == 1


async def test_kept_across_a_restart(db: Database, where: str) -> None:
    await SqlPushStore(db).enable(ALICE, Registration("push.example", "n", "<x/>"), limit=5)
    await db.close()
    again = await reopen(where, [SqlPushStore])
    try:
        assert await SqlPushStore(again).registrations(ALICE) == [
            Registration("push.example", "n", "<x/>")
        ]
    finally:
        await again.close()
