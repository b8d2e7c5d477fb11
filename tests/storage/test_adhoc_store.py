"""The admin commands' stores on both engines: message of the day, disabled accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.credentials import derive_all, prepare_password
from heron.modules.adhoc.store import SqlMotdStore
from heron.storage.accounts import SqlAccountStore
from heron.storage.db import Database
from heron.storage.disabled import SqlDisabledAccounts
from tests.engines import ENGINES, open_store_db

STORES = [SqlAccountStore, SqlDisabledAccounts, SqlMotdStore]


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_store_db(request.param, tmp_path, request, STORES)
    try:
        yield database
    finally:
        await database.close()


async def test_motd_is_set_replaced_and_deleted(db: Database) -> None:
    store = SqlMotdStore(db)
    assert await store.get("example.org") is None
    first = await store.put("example.org", "Maintenance tonight ✈")
    assert await store.get("example.org") == first
    second = await store.put("example.org", "x" * 65536)
    assert second.version > first.version
    assert await store.get("example.org") == second
    assert await store.get("example.net") is None
    assert await store.delete("example.org")
    assert not await store.delete("example.org")
    assert await store.get("example.org") is None


async def test_who_saw_which_motd(db: Database) -> None:
    store = SqlMotdStore(db)
    assert await store.seen("example.org", "alice") == 0
    await store.mark_seen("example.org", ["alice", "bob"], 5)
    await store.mark_seen("example.org", ["alice"], 7)
    assert await store.seen("example.org", "alice") == 7
    assert await store.seen("example.org", "bob") == 5
    assert await store.seen("example.net", "alice") == 0
    await store.forget("example.org", "alice")
    assert await store.seen("example.org", "alice") == 0
    assert await store.seen("example.org", "bob") == 5


async def test_disabled_accounts_go_with_the_account(db: Database) -> None:
    accounts, disabled = SqlAccountStore(db), SqlDisabledAccounts(db)
    keys = derive_all(prepare_password("pw"), 4096)
    await accounts.create("alice", "example.org", keys)
    assert not await disabled.disable("nobody", "example.org")
    assert await disabled.disable("alice", "example.org")
    assert await disabled.disable("alice", "example.org")  # twice: still one row
    assert await disabled.is_disabled("alice", "example.org")
    assert await disabled.list_disabled("example.org") == ["alice"]
    assert await disabled.enable("alice", "example.org")
    assert not await disabled.enable("alice", "example.org")
    assert not await disabled.is_disabled("alice", "example.org")
    await disabled.disable("alice", "example.org")
    await accounts.delete("alice", "example.org")
    assert await disabled.list_disabled("example.org") == []
