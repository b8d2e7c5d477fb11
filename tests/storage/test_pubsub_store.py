"""What pubsub and PEP keep (pubsub/store.py), on both engines: each engine operation's
changes written and read back into a fresh service (as after a restart), item order and
trimming, subscriptions and affiliations, unicode and 64 KiB payloads, an account's data
deleted with the account (and only its), and SQLite files from before version 2 keeping
their order."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from heron import ns
from heron.jid import JID
from heron.modules.pubsub.config import NodeConfig
from heron.modules.pubsub.engine import (
    NO_RELATION,
    Policy,
    PubsubService,
    Relation,
)
from heron.modules.pubsub.store import SqlPubsubStore
from heron.storage.accounts import SqlAccountStore
from heron.storage.copy import copy_storage
from heron.storage.db import Database
from heron.storage.postgres import PostgresDatabase
from heron.storage.sqlite import SqliteDatabase
from heron.xmlstream import serialize
from heron.xmlstream.element import Element
from tests.engines import ENGINES, fresh_schema_url

SERVICE = JID.parse("pubsub.example.org")
ALICE = JID.parse("alice@example.org/phone")
BOB = JID.parse("bob@example.org/laptop")
CAROL = JID.parse("carol@example.org")
DAVE = JID.parse("dave@elsewhere.example/x")
PUBSUB = "http://jabber.org/protocol/pubsub"
DATA = "jabber:x:data"
TUNE = "http://jabber.org/protocol/tune"

Opener = Callable[[], Awaitable[Database]]


@pytest.fixture(params=ENGINES)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens the same database again each time it is called (a restart), migrated."""
    engine: str = request.param
    url = fresh_schema_url(request) if engine == "postgresql" else ""
    opened: list[Database] = []

    async def open_() -> Database:
        if engine == "sqlite":
            db: Database = await SqliteDatabase.open(tmp_path / "heron.db")
        else:
            db = await PostgresDatabase.open(url, pool_size=2)
        for store in (SqlAccountStore, SqlPubsubStore):
            await db.migrate(store.migrations_for(db.dialect))
        opened.append(db)
        return db

    yield open_
    for db in opened:
        await db.close()


def service(jid: JID = SERVICE, **policy: object) -> PubsubService:
    counter = itertools.count()
    owner = jid if jid.local is not None else None
    return PubsubService(
        jid,
        Policy(**policy),  # type: ignore[arg-type]  # keyword options of the test
        owner=owner,
        make_id=lambda: f"id{next(counter)}",
    )


def form(form_type: str, **values: str) -> Element:
    x = Element("x", DATA, {"type": "submit"})
    x.add("field", DATA, {"var": "FORM_TYPE"}).add("value", DATA, text=form_type)
    for var, value in values.items():
        x.add("field", DATA, {"var": f"pubsub#{var}"}).add("value", DATA, text=value)
    return x


def item(item_id: str, text: str = "") -> Element:
    el = Element("item", PUBSUB, {"id": item_id})
    el.add("entry", "urn:example", text=text or f"entry {item_id}")
    return el


async def change(
    store: SqlPubsubStore, svc: PubsubService, steps: Callable[[PubsubService], object]
) -> None:
    """Run engine operations, then store what they changed (as the module does)."""
    steps(svc)
    await store.save(svc, svc.drain())


async def reloaded(store: SqlPubsubStore, jid: JID = SERVICE, **policy: object) -> PubsubService:
    fresh = service(jid, **policy)
    await store.load(fresh)
    return fresh


def item_ids(svc: PubsubService, node: str) -> list[str]:
    return list(svc.nodes[node].items)


async def test_create_publish_retract_purge_delete(opener: Opener) -> None:
    store = SqlPubsubStore(await opener())
    svc = service()
    await change(
        store, svc, lambda s: s.create("news", ALICE, form(ns.PUBSUB_NODE_CONFIG, max_items="10"))
    )
    for n in (1, 2, 3):
        await change(store, svc, lambda s, n=n: s.publish("news", ALICE, item(f"i{n}")))
    await change(store, svc, lambda s: s.retract("news", ALICE, "i2", notify=True))
    kept = await reloaded(store)
    assert item_ids(kept, "news") == ["i1", "i3"]
    assert kept.nodes["news"].affiliations == {ALICE.bare: "owner"}
    stored = kept.nodes["news"].items["i3"]
    assert stored.publisher == ALICE.bare
    assert stored.payload is not None
    assert serialize(stored.payload) == serialize(next(item("i3").elements()))

    await change(store, svc, lambda s: s.purge("news", ALICE))
    purged = await reloaded(store)
    assert "news" in purged.nodes
    assert item_ids(purged, "news") == []

    await change(store, svc, lambda s: s.publish("news", ALICE, item("after")))
    await change(store, svc, lambda s: s.delete("news", ALICE))
    assert (await reloaded(store)).nodes == {}
    assert await store.db.fetchval("SELECT COUNT(*) FROM pubsub_items") == 0


async def test_item_order_republish_and_max_items(opener: Opener) -> None:
    store = SqlPubsubStore(await opener())
    svc = service()
    await change(
        store, svc, lambda s: s.create("feed", ALICE, form(ns.PUBSUB_NODE_CONFIG, max_items="3"))
    )
    for n in range(1, 6):
        await change(store, svc, lambda s, n=n: s.publish("feed", ALICE, item(f"i{n}")))
    assert item_ids(await reloaded(store), "feed") == ["i3", "i4", "i5"]
    # The same id again replaces the item and makes it the newest.
    await change(store, svc, lambda s: s.publish("feed", ALICE, item("i3", "second")))
    kept = await reloaded(store)
    assert item_ids(kept, "feed") == ["i4", "i5", "i3"]
    payload = kept.nodes["feed"].items["i3"].payload
    assert payload is not None
    assert payload.text == "second"
    assert kept.nodes["feed"].config.max_items == 3
    # Trimmed items leave no rows behind.
    assert await store.db.fetchval("SELECT COUNT(*) FROM pubsub_items") == 3

    def several(s: PubsubService) -> None:  # one operation's outbox with many changes
        s.publish("feed", ALICE, item("a"))
        s.publish("feed", ALICE, item("b"))
        s.publish("feed", ALICE, item("a", "again"))
        s.publish("feed", ALICE, item("c"))
        s.publish("feed", ALICE, item("d"))

    await change(store, svc, several)
    assert item_ids(await reloaded(store), "feed") == item_ids(svc, "feed") == ["a", "c", "d"]
    assert await store.db.fetchval("SELECT COUNT(*) FROM pubsub_items") == 3


async def test_subscriptions_and_affiliations(opener: Opener) -> None:
    store = SqlPubsubStore(await opener())
    svc = service()
    await change(store, svc, lambda s: s.create("open", ALICE))
    await change(
        store,
        svc,
        lambda s: s.create("club", ALICE, form(ns.PUBSUB_NODE_CONFIG, access_model="authorize")),
    )
    await change(
        store,
        svc,
        lambda s: s.set_affiliations(
            "open", ALICE, [(BOB.bare, "publisher"), (CAROL, "outcast"), (DAVE.bare, "member")]
        ),
    )
    sub = svc.subscribe("open", BOB, BOB, NO_RELATION)
    await store.save(svc, svc.drain())
    await change(
        store,
        svc,
        lambda s: s.set_options(
            "open", BOB, BOB, sub.subid, form(ns.PUBSUB_SUBSCRIBE_OPTIONS, deliver="0")
        ),
    )
    await change(store, svc, lambda s: s.subscribe("open", DAVE, DAVE, NO_RELATION))
    await change(store, svc, lambda s: s.subscribe("club", BOB, BOB, NO_RELATION))

    kept = await reloaded(store)
    assert kept.nodes["open"].affiliations == {
        ALICE.bare: "owner",
        BOB.bare: "publisher",
        CAROL: "outcast",
        DAVE.bare: "member",
    }
    assert kept.nodes["open"].subscriptions == svc.nodes["open"].subscriptions
    bob = kept.nodes["open"].subscriptions[BOB]
    assert (bob.subid, bob.state, bob.deliver) == (sub.subid, "subscribed", False)
    assert kept.nodes["open"].subscriptions[DAVE].deliver is True
    assert kept.nodes["club"].subscriptions[BOB].state == "pending"
    assert kept.nodes["club"].config.access_model == "authorize"
    # What the service answers from the stored state is what it answered before.
    assert sorted(kept.subscriptions_of(BOB), key=str) == sorted(svc.subscriptions_of(BOB), key=str)
    assert kept.affiliations_of(DAVE) == [("open", "member")]

    await change(store, svc, lambda s: s.unsubscribe("open", BOB, BOB, None))
    await change(store, svc, lambda s: s.set_affiliations("open", ALICE, [(CAROL, "none")]))
    again = await reloaded(store)
    assert set(again.nodes["open"].subscriptions) == {DAVE}
    assert CAROL not in again.nodes["open"].affiliations


async def test_unicode_and_64_kib_payloads(opener: Opener) -> None:
    store = SqlPubsubStore(await opener())
    svc = service(max_payload_bytes=70000)
    big = "<&>" + "ä🦆 sixteen!!" * 4096  # 16 bytes of UTF-8 each: 64 KiB of text
    await change(store, svc, lambda s: s.create("notes-ノート", ALICE))
    await change(store, svc, lambda s: s.publish("notes-ノート", ALICE, item("é-🦆", big)))
    payload = (
        (await reloaded(store, max_payload_bytes=70000)).nodes["notes-ノート"].items["é-🦆"].payload
    )
    assert payload is not None
    assert payload.text == big
    assert len(serialize(payload).encode()) > 65536


async def test_pep_data_survives_a_restart_and_goes_with_its_account(opener: Opener) -> None:
    alice, bob = ALICE.bare, BOB.bare
    db = await opener()
    accounts = SqlAccountStore(db)
    for owner in (alice, bob, CAROL):
        await accounts.create(owner.local or "", owner.domain, [])
    store = SqlPubsubStore(db)
    for owner in (alice, bob):
        pep = service(owner, default_config=NodeConfig(access_model="presence", max_items=1))
        await change(
            store,
            pep,
            lambda s, o=owner: s.publish(TUNE, o, item("current"), may_create=True),
        )
    public = service()
    await change(store, public, lambda s: s.create("news", alice))
    await change(store, public, lambda s: s.publish("news", alice, item("by-alice")))
    await change(store, public, lambda s: s.subscribe("news", BOB, BOB, NO_RELATION))
    await db.close()

    db = await opener()  # a restart
    store = SqlPubsubStore(db)
    kept = await reloaded(store, alice)
    node = kept.nodes[TUNE]
    assert list(node.items) == ["current"]
    assert node.config.access_model == "presence"
    assert kept.may_access(node, BOB, Relation(subscribed=True))
    assert not kept.may_access(node, BOB, NO_RELATION)

    # Deleting the account deletes its PEP nodes and items (whoever deletes it), not the
    # nodes it created on the service, nor anyone else's.
    await SqlAccountStore(db).delete("alice", "example.org")
    assert (await reloaded(store, alice)).nodes == {}
    assert list((await reloaded(store, bob)).nodes[TUNE].items) == ["current"]
    assert list((await reloaded(store)).nodes["news"].items) == ["by-alice"]
    owners = await db.fetch("SELECT DISTINCT service FROM pubsub_items ORDER BY service")
    assert [str(row[0]) for row in owners] == [str(bob), str(SERVICE)]


async def test_sqlite_items_written_before_seq_keep_their_order(tmp_path: Path) -> None:
    """SQLite files from before version 2 ordered items by rowid; the order survives, and
    the rows of existing accounts are tied to them. (PostgreSQL's first schema had both.)"""
    db = await SqliteDatabase.open(tmp_path / "old.db")
    try:
        await db.migrate(SqlAccountStore.migrations_for("sqlite"))
        await SqlAccountStore(db).create("alice", "example.org", [])
        steps = SqlPubsubStore.migrations_for(db.dialect)
        await db.migrate(steps[:1])
        for service_, owner in ((SERVICE, ALICE.bare), (ALICE.bare, ALICE.bare), (BOB, BOB)):
            await db.execute(
                "INSERT INTO pubsub_nodes VALUES (?, 'n', ?, ?, '{}')",
                str(service_.bare),
                NodeConfig(max_items=10).to_json(),
                f'{{"{owner.bare}": "owner"}}',
            )
            for item_id in ("z", "a", "m"):
                await db.execute(
                    "INSERT OR REPLACE INTO pubsub_items VALUES (?, 'n', ?, ?, NULL)",
                    str(service_.bare),
                    item_id,
                    str(owner.bare),
                )
            await db.execute(  # the old store's re-publish: the row replaced, now the newest
                "INSERT OR REPLACE INTO pubsub_items VALUES (?, 'n', 'z', ?, NULL)",
                str(service_.bare),
                str(owner.bare),
            )
        await db.migrate(steps)
        store = SqlPubsubStore(db)
        for kept in (SERVICE, ALICE.bare):
            assert item_ids(await reloaded(store, kept), "n") == ["a", "m", "z"]
        # bob's account was deleted before rows went with it: his rows are left behind.
        assert (await reloaded(store, BOB.bare)).nodes == {}
        svc = await reloaded(store)
        await change(store, svc, lambda s: s.publish("n", ALICE, item("new")))
        assert item_ids(await reloaded(store), "n") == ["a", "m", "z", "new"]
        await SqlAccountStore(db).delete("alice", "example.org")
        assert (await reloaded(store, ALICE.bare)).nodes == {}
        assert list((await reloaded(store)).nodes) == ["n"]
    finally:
        await db.close()


async def test_copy_between_engines_keeps_item_order(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SQLite → PostgreSQL → SQLite (heron copy-storage's copy): nodes, items in their order,
    and the next publish on the target is still the newest."""
    url = fresh_schema_url(request)  # skips (or fails in CI) without PostgreSQL
    lite = await SqliteDatabase.open(tmp_path / "lite.db")
    pg = await PostgresDatabase.open(url, pool_size=2)
    back = await SqliteDatabase.open(tmp_path / "back.db")
    try:
        for db in (lite, pg, back):
            for store_cls in (SqlAccountStore, SqlPubsubStore):
                await db.migrate(store_cls.migrations_for(db.dialect))
        await SqlAccountStore(lite).create("alice", "example.org", [])
        source = SqlPubsubStore(lite)
        svc = service()
        await change(
            source,
            svc,
            lambda s: s.create("feed", ALICE, form(ns.PUBSUB_NODE_CONFIG, max_items="9")),
        )
        for item_id in ("z", "a", "m", "z"):  # z again: now the newest
            await change(source, svc, lambda s, i=item_id: s.publish("feed", ALICE, item(i)))
        pep = service(ALICE.bare)
        await change(source, pep, lambda s: s.publish(TUNE, ALICE, item("t"), may_create=True))

        await copy_storage(lite, pg)
        await copy_storage(pg, back)
        for db in (pg, back):
            store = SqlPubsubStore(db)
            assert item_ids(await reloaded(store), "feed") == ["a", "m", "z"]
            assert list((await reloaded(store, ALICE.bare)).nodes[TUNE].items) == ["t"]
            copied = await reloaded(store)
            await change(store, copied, lambda s: s.publish("feed", ALICE, item("new")))
            assert item_ids(await reloaded(store), "feed") == ["a", "m", "z", "new"]
        # The foreign key came along: the account's PEP goes with it on the target too.
        await SqlAccountStore(pg).delete("alice", "example.org")
        assert (await reloaded(SqlPubsubStore(pg), ALICE.bare)).nodes == {}
    finally:
        for db in (lite, pg, back):
            await db.close()


async def test_a_deleted_account_leaves_no_affiliation_or_subscription(opener: Opener) -> None:
    db = await opener()
    store = SqlPubsubStore(db)
    alice, bob = ALICE.bare, BOB.bare
    await SqlAccountStore(db).create("bob", "example.org", [])
    lookalike = JID.parse("alice@example.org.test")  # the same prefix, another account
    underscored = JID.parse("a_ice@example.org")  # _ is LIKE's any-character
    public = service()
    await change(store, public, lambda s: s.create("alices", ALICE))
    await change(store, public, lambda s: s.create("bobs", BOB))

    def join(s: PubsubService) -> None:
        s.set_affiliations("bobs", BOB, [(alice, "publisher"), (lookalike, "member")])
        s.subscribe("bobs", ALICE, ALICE, NO_RELATION)  # a full JID
        s.subscribe("bobs", alice, alice, NO_RELATION)
        s.subscribe("bobs", underscored, underscored, NO_RELATION)
        s.subscribe("alices", BOB, BOB, NO_RELATION)

    await change(store, public, join)
    pep = service(bob, default_config=NodeConfig(access_model="open", max_items=1))
    await change(store, pep, lambda s: s.publish(TUNE, bob, item("now"), may_create=True))
    await change(store, pep, lambda s: s.subscribe(TUNE, ALICE, ALICE, NO_RELATION))

    changed = await store.forget_entity(alice)
    assert changed == [bob, SERVICE]
    kept = await reloaded(store)
    # Her own node stays, owned by no one (nobody inherits it), with Bob's subscription.
    assert kept.nodes["alices"].affiliations == {}
    assert set(kept.nodes["alices"].subscriptions) == {BOB}
    assert kept.nodes["bobs"].affiliations == {bob: "owner", lookalike: "member"}
    assert set(kept.nodes["bobs"].subscriptions) == {underscored}
    assert (await reloaded(store, bob)).nodes[TUNE].subscriptions == {}
    assert await store.forget_entity(alice) == []  # nothing left to forget
    assert await store.forget_entity(underscored) == [SERVICE]
