"""vcard-temp (XEP-0054) and private XML storage (XEP-0049) against a real SQLite file
(their stores on both engines: tests/storage/test_vcard_private_store.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from heron import ns
from heron.config import ConfigError
from heron.core.accounts import AccountService, UserExists
from heron.core.module import Module, ModuleManager
from heron.core.registry import HostRegistry, Target
from heron.jid import JID
from heron.modules import AVAILABLE, DEFAULT_MODULES
from heron.modules.private import PrivateModule
from heron.modules.vcard import VcardModule
from heron.stanza import ErrorType, Stanza, StanzaCondition, StanzaError
from heron.storage.accounts import SqlAccountStore
from heron.storage.sqlite import SqliteDatabase
from heron.xmlstream.element import Element
from heron.xmlstream.stored import read_stored
from tests.modulecore import make_core

if TYPE_CHECKING:
    pass

DOMAIN = "example.org"
ALICE = "alice@example.org/pc"
BOB = "bob@example.org/phone"


class FakeServer:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.accounts = AccountService(SqlAccountStore(db), secret=b"x" * 32, iterations=4096)

    def db_or_fail(self) -> SqliteDatabase:
        return self.db


class Host:
    def __init__(self, db: SqliteDatabase) -> None:
        self.server = FakeServer(db)
        self.registry = HostRegistry(DOMAIN)
        self.manager = ModuleManager(self.registry)

    async def load(self, cls: type[Module], options: Mapping[str, object] | None = None) -> Module:
        db = self.server.db
        for store in (SqlAccountStore, *cls.stores):  # as the server does before modules
            await db.migrate(store.migrations_for(db.dialect))
        for user in (ALICE, BOB):  # what they store belongs to their accounts
            with contextlib.suppress(UserExists):
                await self.server.accounts.create(JID.parse(user).bare, "password-123")
        core = make_core(self.server.db, self.server.accounts, {DOMAIN: self.registry})
        ctx = core.for_module(
            domain=DOMAIN,
            name=cls.name,
            registry=self.registry,
            options=options or {},
            log=logging.LoggerAdapter(logging.getLogger(f"heron.modules.{cls.name}"), {}),
        )
        return await self.manager.load(cls, ctx)

    async def iq(
        self, type_: str, payload: Element, *, sender: str = ALICE, to: str | None = None
    ) -> Element | None:
        from_ = JID.parse(sender)
        target_jid = from_.bare if to is None else JID.parse(to)
        target = Target.SELF if target_jid == from_.bare else Target.BARE
        handler = self.registry.find_iq_handler(type_, payload.ns, target)
        assert handler is not None, f"no {type_} handler for {payload.ns} to {target}"
        element = Element("iq", ns.CLIENT, {"type": type_, "id": "q1"}, [payload])
        return await handler(Stanza(element, target_jid, from_))


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    db = await SqliteDatabase.open(tmp_path / "heron.db")
    h = Host(db)
    await h.load(VcardModule)
    await h.load(PrivateModule)
    try:
        yield h
    finally:
        await h.manager.unload_all()
        await db.close()


async def stanza_error(call: Awaitable[object]) -> StanzaError:
    with pytest.raises(StanzaError) as info:
        await call
    return info.value


def vcard(fn: str = "Alice", **extra: str) -> Element:
    card = Element("vCard", ns.VCARD)
    card.add("FN", ns.VCARD, text=fn)
    for tag, text in extra.items():
        card.add(tag, ns.VCARD, text=text)
    return card


def private_query(*children: Element) -> Element:
    return Element("query", ns.PRIVATE, children=list(children))


def test_registered_and_enabled_by_default() -> None:
    assert AVAILABLE["vcard"] is VcardModule
    assert AVAILABLE["private"] is PrivateModule
    assert "vcard" in DEFAULT_MODULES
    assert "private" in DEFAULT_MODULES


# --- vcard ------------------------------------------------------------------------------------


async def test_vcard_feature_declared(host: Host) -> None:
    assert ns.VCARD in host.registry.features
    assert ns.PRIVATE in host.registry.features


async def test_own_vcard_empty_when_none_stored(host: Host) -> None:
    result = await host.iq("get", Element("vCard", ns.VCARD))
    assert result == Element("vCard", ns.VCARD)


async def test_vcard_round_trip_and_replace(host: Host) -> None:
    assert await host.iq("set", vcard("Alice", NICKNAME="al")) is None
    assert await host.iq("get", Element("vCard", ns.VCARD)) == vcard("Alice", NICKNAME="al")
    assert await host.iq("set", vcard("Alice B.")) is None
    assert await host.iq("get", Element("vCard", ns.VCARD)) == vcard("Alice B.")


async def test_other_user_reads_vcard(host: Host) -> None:
    await host.iq("set", vcard("Alice"))
    result = await host.iq("get", Element("vCard", ns.VCARD), sender=BOB, to="alice@example.org")
    assert result == vcard("Alice")


async def test_other_user_without_vcard_is_item_not_found(host: Host) -> None:
    error = await stanza_error(
        host.iq("get", Element("vCard", ns.VCARD), sender=BOB, to="alice@example.org")
    )
    assert error.condition == StanzaCondition.ITEM_NOT_FOUND


async def test_unknown_user_is_item_not_found(host: Host) -> None:
    error = await stanza_error(host.iq("get", Element("vCard", ns.VCARD), to="nobody@example.org"))
    assert error.condition == StanzaCondition.ITEM_NOT_FOUND


async def test_setting_someone_elses_vcard_is_forbidden(host: Host) -> None:
    error = await stanza_error(host.iq("set", vcard("Mallory"), sender=BOB, to="alice@example.org"))
    assert error.condition == StanzaCondition.FORBIDDEN
    assert await host.iq("get", Element("vCard", ns.VCARD)) == Element("vCard", ns.VCARD)


async def test_vcard_size_limit(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "limit.db")
    h = Host(db)
    try:
        await h.load(VcardModule, {"max_bytes": 100})
        error = await stanza_error(h.iq("set", vcard("A" * 200)))
        assert error.condition == StanzaCondition.NOT_ACCEPTABLE
        assert await h.iq("set", vcard("short")) is None
    finally:
        await h.manager.unload_all()
        await db.close()


async def test_vcard_bad_option(host: Host) -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        await Host(host.server.db).load(VcardModule, {"max_bytes": 0})


async def test_wrong_payload_is_bad_request(host: Host) -> None:
    error = await stanza_error(host.iq("set", Element("vcard", ns.VCARD)))
    assert error.condition == StanzaCondition.BAD_REQUEST


@pytest.mark.parametrize(
    "stored",
    [
        "<vCard xmlns='vcard-temp'><FN>unterminated",
        "not xml at all",
        "<vCard xmlns='other'/>",
        "<vCard xmlns='vcard-temp'/><vCard xmlns='vcard-temp'/>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]><vCard xmlns='vcard-temp'>&a;</vCard>",
        "<vCard xmlns='vcard-temp'>" + "<a>" * 100 + "</a>" * 100 + "</vCard>",
        "",
    ],
)
async def test_corrupt_stored_vcard_is_treated_as_absent(host: Host, stored: str) -> None:
    await host.server.db.execute(
        "INSERT INTO vcards (domain, username, xml) VALUES (?, ?, ?)", DOMAIN, "alice", stored
    )
    assert await host.iq("get", Element("vCard", ns.VCARD)) == Element("vCard", ns.VCARD)
    error = await stanza_error(
        host.iq("get", Element("vCard", ns.VCARD), sender=BOB, to="alice@example.org")
    )
    assert error.condition == StanzaCondition.ITEM_NOT_FOUND


def test_parse_stored_keeps_namespaces_and_text() -> None:
    xml = "<vCard xmlns='vcard-temp'><FN>A &amp; B</FN><x xmlns='urn:other' k='v'/></vCard>"
    parsed = read_stored(xml, "vCard", ns.VCARD)
    assert parsed is not None
    assert parsed.child_text("FN", ns.VCARD) == "A & B"
    other = parsed.find("x", "urn:other")
    assert other is not None
    assert other.get("k") == "v"


async def test_vcard_survives_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    for round_ in range(2):
        db = await SqliteDatabase.open(path)
        h = Host(db)
        try:
            await h.load(VcardModule)
            if round_ == 0:
                await h.iq("set", vcard("Kept"))
            else:
                assert await h.iq("get", Element("vCard", ns.VCARD)) == vcard("Kept")
        finally:
            await h.manager.unload_all()
            await db.close()


# --- private ----------------------------------------------------------------------------------


def prefs(nick: str | None = None) -> Element:
    element = Element("exodus", "exodus:prefs")
    if nick is not None:
        element.add("defaultnick", "exodus:prefs", text=nick)
    return element


async def test_private_empty_when_nothing_stored(host: Host) -> None:
    result = await host.iq("get", private_query(prefs()))
    assert result == private_query(prefs())


async def test_private_round_trip_and_replace(host: Host) -> None:
    assert await host.iq("set", private_query(prefs("Hamlet"))) is None
    assert await host.iq("get", private_query(prefs())) == private_query(prefs("Hamlet"))
    await host.iq("set", private_query(prefs("Ophelia")))
    assert await host.iq("get", private_query(prefs())) == private_query(prefs("Ophelia"))


async def test_private_keyed_by_namespace_and_name(host: Host) -> None:
    same_ns_other_name = Element("other", "exodus:prefs", children=["x"])
    other_ns_same_name = Element("exodus", "urn:else", children=["y"])
    await host.iq("set", private_query(prefs("Hamlet"), same_ns_other_name))
    await host.iq("set", private_query(other_ns_same_name))
    assert await host.iq("get", private_query(prefs())) == private_query(prefs("Hamlet"))
    got = await host.iq("get", private_query(Element("other", "exodus:prefs")))
    assert got == private_query(same_ns_other_name)
    got = await host.iq("get", private_query(Element("exodus", "urn:else")))
    assert got == private_query(other_ns_same_name)


async def test_private_is_per_user(host: Host) -> None:
    await host.iq("set", private_query(prefs("Hamlet")))
    result = await host.iq("get", private_query(prefs()), sender=BOB)
    assert result == private_query(prefs())


@pytest.mark.parametrize("type_", ["get", "set"])
async def test_private_of_another_user_is_forbidden(host: Host, type_: str) -> None:
    error = await stanza_error(
        host.iq(type_, private_query(prefs("x")), sender=BOB, to="alice@example.org")
    )
    assert error.condition == StanzaCondition.FORBIDDEN
    assert error.type == ErrorType.CANCEL


@pytest.mark.parametrize("type_", ["get", "set"])
@pytest.mark.parametrize("namespace", [ns.CLIENT, ns.SERVER, ns.PRIVATE])
async def test_private_reserved_namespaces(host: Host, type_: str, namespace: str) -> None:
    error = await stanza_error(host.iq(type_, private_query(Element("x", namespace))))
    assert error.condition == StanzaCondition.NOT_ACCEPTABLE


@pytest.mark.parametrize("type_", ["get", "set"])
async def test_private_empty_query_not_acceptable(host: Host, type_: str) -> None:
    error = await stanza_error(host.iq(type_, private_query()))
    assert error.condition == StanzaCondition.NOT_ACCEPTABLE


async def test_private_get_of_several_children_not_acceptable(host: Host) -> None:
    error = await stanza_error(host.iq("get", private_query(prefs(), Element("other", "urn:else"))))
    assert error.condition == StanzaCondition.NOT_ACCEPTABLE


async def test_private_size_limit_stores_nothing(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "limit.db")
    h = Host(db)
    try:
        await h.load(PrivateModule, {"max_bytes": 100})
        small = Element("small", "urn:a", children=["ok"])
        error = await stanza_error(h.iq("set", private_query(small, prefs("H" * 200))))
        assert error.condition == StanzaCondition.NOT_ACCEPTABLE
        got = await h.iq("get", private_query(Element("small", "urn:a")))
        assert got == private_query(Element("small", "urn:a"))
    finally:
        await h.manager.unload_all()
        await db.close()


async def test_corrupt_stored_private_is_treated_as_absent(host: Host) -> None:
    await host.server.db.execute(
        "INSERT INTO private_xml (domain, username, ns, name, xml) VALUES (?, ?, ?, ?, ?)",
        DOMAIN,
        "alice",
        "exodus:prefs",
        "exodus",
        "<exodus xmlns='wrong'/>",
    )
    assert await host.iq("get", private_query(prefs())) == private_query(prefs())
