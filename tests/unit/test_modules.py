"""The bundled XEP modules, driven through a real HostRegistry and ModuleManager."""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from heron import ns
from heron.config import ConfigError
from heron.core.accounts import AccountService
from heron.core.module import Module, ModuleManager
from heron.core.registry import HostRegistry, Target
from heron.core.sessions import SessionManager
from heron.jid import JID
from heron.modules import AVAILABLE, DEFAULT_MODULES
from heron.modules.disco import DiscoModule
from heron.modules.ping import PingModule
from heron.modules.register import RegisterModule, SlidingWindow
from heron.modules.register.store import SqlInvitationStore
from heron.modules.time import TimeModule, format_datetime
from heron.modules.version import VersionModule
from heron.stanza import ErrorType, Stanza, StanzaCondition, StanzaError
from heron.storage.accounts import MemoryAccountStore, SqlAccountStore
from heron.storage.fast import FastTokenStore
from heron.storage.sqlite import SqliteDatabase
from heron.xmlstream.element import Element
from tests.modulecore import make_core

if TYPE_CHECKING:
    pass

DOMAIN = "example.org"
ALICE = "alice@example.org/pc"
PASSWORD = "correct horse"


class FakeServer:
    """What modules use of the server: accounts, version, the host registries."""

    version = "9.8.7"

    def __init__(self) -> None:
        self.store = MemoryAccountStore()
        self.accounts = AccountService(self.store, secret=b"x" * 32, iterations=4096)
        self.sessions = SessionManager()
        self.registries: dict[str, HostRegistry] = {}
        self.db: SqliteDatabase | None = None  # opened by Host.load for modules with stores

    def db_or_fail(self) -> SqliteDatabase:
        assert self.db is not None
        return self.db

    @property
    def fast(self) -> FastTokenStore:
        return FastTokenStore(self.db_or_fail())

    def registry_for(self, domain: str) -> HostRegistry | None:
        return self.registries.get(domain)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Host:
    """One virtual host with its registry and module manager."""

    def __init__(self) -> None:
        self.server = FakeServer()
        self.registry = HostRegistry(DOMAIN)
        self.server.registries[DOMAIN] = self.registry
        self.manager = ModuleManager(self.registry)

    async def load(self, cls: type[Module], options: Mapping[str, object] | None = None) -> Module:
        if self.server.db is None:
            folder = Path(tempfile.mkdtemp(prefix="heron-unit-"))
            self.server.db = await SqliteDatabase.open(folder / "heron.db")
            await self.server.db.migrate(FastTokenStore.migrations_for("sqlite"))
            await self.server.db.migrate(SqlAccountStore.MIGRATIONS["sqlite"])
        for store in cls.stores:  # as the server does before modules start
            await self.server.db.migrate(store.migrations_for("sqlite"))
        core = make_core(self.server.db, self.server.accounts, self.server.registries)
        ctx = core.for_module(
            domain=DOMAIN,
            name=cls.name,
            registry=self.registry,
            options=options or {},
            log=logging.LoggerAdapter(logging.getLogger(f"heron.modules.{cls.name}"), {}),
        )
        return await self.manager.load(cls, ctx)

    async def iq(
        self,
        type_: str,
        payload: Element,
        target: Target = Target.HOST,
        *,
        sender: str = ALICE,
        to: str = DOMAIN,
    ) -> Element | None:
        handler = self.registry.find_iq_handler(type_, payload.ns, target)
        assert handler is not None, f"no {type_} handler for {payload.ns} to {target}"
        return await handler(make_iq(type_, payload, sender=sender, to=to))

    async def preauth(
        self,
        type_: str,
        payload: Element,
        ip: str = "192.0.2.1",
        state: dict[str, object] | None = None,
    ) -> Element | None:
        handler = self.registry.preauth_iq.get((type_, payload.ns))
        assert handler is not None
        stanza = make_iq(type_, payload, sender=None, to=DOMAIN)
        return await handler(stanza, ip, {} if state is None else state)


def make_iq(type_: str, payload: Element, *, sender: str | None, to: str | None) -> Stanza:
    element = Element("iq", ns.CLIENT, {"type": type_, "id": "q1"}, [payload])
    if sender is not None:
        element.attrs["from"] = sender
    if to is not None:
        element.attrs["to"] = to
    return Stanza(
        element,
        JID.parse(to) if to is not None else None,
        JID.parse(sender) if sender is not None else None,
    )


def query(namespace: str, tag: str = "query", **fields: str) -> Element:
    element = Element(tag, namespace)
    for name, text in fields.items():
        element.add(name, text=text)
    return element


async def stanza_error(call: Awaitable[object]) -> StanzaError:
    with pytest.raises(StanzaError) as info:
        await call
    return info.value


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    made = Host()
    yield made
    if made.server.db is not None:
        await made.server.db.close()


# --- ping -------------------------------------------------------------------------------
async def test_ping_host_and_self_get_an_empty_result(host: Host) -> None:
    await host.load(PingModule)
    assert await host.iq("get", query(ns.PING, "ping")) is None
    sender_bare = "alice@example.org"
    assert await host.iq("get", query(ns.PING, "ping"), Target.SELF, to=sender_bare) is None
    assert host.registry.find_iq_handler("get", ns.PING, Target.FULL) is None


# --- version ----------------------------------------------------------------------------
async def test_version_tells_name_and_version_but_not_the_os(host: Host) -> None:
    await host.load(VersionModule)
    result = await host.iq("get", query(ns.VERSION))
    assert result is not None
    assert result.child_text("name") == "Heron"
    assert result.child_text("version") == "9.8.7"
    assert result.find("os") is None


async def test_version_tells_the_os_when_configured(host: Host) -> None:
    await host.load(VersionModule, {"show_os": True})
    result = await host.iq("get", query(ns.VERSION))
    assert result is not None
    assert result.child_text("os")


async def test_version_rejects_a_bad_option(host: Host) -> None:
    with pytest.raises(ConfigError):
        await host.load(VersionModule, {"show_os": "perhaps"})


# --- time -------------------------------------------------------------------------------
async def test_time_answers_in_utc_with_milliseconds(host: Host) -> None:
    module = await host.load(TimeModule)
    assert isinstance(module, TimeModule)
    module.now = lambda: datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    result = await host.iq("get", query(ns.TIME, "time"))
    assert result is not None
    assert (result.tag, result.ns) == ("time", ns.TIME)
    assert result.child_text("tzo") == "+00:00"
    assert result.child_text("utc") == "2024-05-06T07:08:09.123Z"


async def test_time_from_the_real_clock_has_the_xep_0082_shape(host: Host) -> None:
    await host.load(TimeModule)
    result = await host.iq("get", query(ns.TIME, "time"))
    assert result is not None
    utc = result.child_text("utc") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc)


def test_format_datetime_converts_other_zones_to_utc() -> None:
    moment = datetime(2024, 1, 1, 1, 30, 0, 5000, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(moment) == "2023-12-31T23:30:00.005Z"


# --- disco ------------------------------------------------------------------------------
async def test_disco_info_lists_identity_and_features_of_loaded_modules(host: Host) -> None:
    await host.load(DiscoModule)
    await host.load(PingModule)
    result = await host.iq("get", query(ns.DISCO_INFO))
    assert result is not None
    identities = [
        (i.get("category"), i.get("type"), i.get("name")) for i in result.find_all("identity")
    ]
    assert identities[0] == ("server", "im", "Heron")
    features = [f.attrs["var"] for f in result.find_all("feature")]
    assert {ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING} <= set(features)
    assert features == sorted(features)


async def test_disco_info_stops_listing_an_unloaded_module(host: Host) -> None:
    await host.load(DiscoModule)
    await host.load(PingModule)
    await host.manager.unload("ping")
    assert host.registry.find_iq_handler("get", ns.PING, Target.HOST) is None
    result = await host.iq("get", query(ns.DISCO_INFO))
    assert result is not None
    assert ns.PING not in [f.get("var") for f in result.find_all("feature")]


async def test_disco_unknown_node_is_item_not_found(host: Host) -> None:
    await host.load(DiscoModule)
    for namespace in (ns.DISCO_INFO, ns.DISCO_ITEMS):
        payload = query(namespace)
        payload.attrs["node"] = "urn:example:nope"
        error = await stanza_error(host.iq("get", payload))
        assert error.condition is StanzaCondition.ITEM_NOT_FOUND


async def test_disco_info_of_own_account(host: Host) -> None:
    await host.load(DiscoModule)
    result = await host.iq("get", query(ns.DISCO_INFO), Target.SELF, to="alice@example.org")
    assert result is not None
    identity = result.find("identity")
    assert identity is not None
    assert (identity.get("category"), identity.get("type")) == ("account", "registered")


async def test_disco_of_another_account_does_not_leak_its_existence(host: Host) -> None:
    await host.load(DiscoModule)
    await host.server.accounts.create(JID.parse("bob@example.org"), PASSWORD)
    for to in ("bob@example.org", "nobody@example.org"):
        for namespace in (ns.DISCO_INFO, ns.DISCO_ITEMS):
            error = await stanza_error(host.iq("get", query(namespace), Target.BARE, to=to))
            assert error.condition is StanzaCondition.SERVICE_UNAVAILABLE


async def test_disco_items_come_from_the_option(host: Host) -> None:
    await host.load(DiscoModule, {"items": ["conference.example.org", "proxy.example.org"]})
    result = await host.iq("get", query(ns.DISCO_ITEMS))
    assert result is not None
    assert [i.get("jid") for i in result.find_all("item")] == [
        "conference.example.org",
        "proxy.example.org",
    ]
    own = await host.iq("get", query(ns.DISCO_ITEMS), Target.SELF, to="alice@example.org")
    assert own is not None
    assert own.find_all("item") == []


async def test_disco_items_refuse_an_invalid_jid(host: Host) -> None:
    with pytest.raises(ConfigError, match="items"):
        await host.load(DiscoModule, {"items": ["not a jid@"]})


# --- registration before login ----------------------------------------------------------
async def test_registration_is_off_by_default(host: Host) -> None:
    await host.load(RegisterModule)
    assert host.registry.preauth_iq == {}
    assert [f() for f in host.registry.preauth_features] == [None, None]  # nothing offered
    # Password change and removal remain available after login.
    assert host.registry.find_iq_handler("set", ns.REGISTER, Target.HOST) is not None


async def test_registration_offers_fields_and_a_stream_feature(host: Host) -> None:
    await host.load(RegisterModule, {"allow_registration": True})
    features = [p() for p in host.registry.preauth_features]
    assert Element("register", ns.REGISTER_FEATURE) in features
    result = await host.preauth("get", query(ns.REGISTER))
    assert result is not None
    assert result.find("username") is not None
    assert result.find("password") is not None
    assert result.find("registered") is None


async def test_registration_creates_an_account_once(host: Host) -> None:
    await host.load(RegisterModule, {"allow_registration": True})
    form = query(ns.REGISTER, username="Bob", password=PASSWORD)
    assert await host.preauth("set", form) is None
    assert await host.server.accounts.exists(JID.parse("bob@example.org"))
    error = await stanza_error(host.preauth("set", form, ip="192.0.2.2"))
    assert error.condition is StanzaCondition.CONFLICT


@pytest.mark.parametrize(
    ("fields", "condition"),
    [
        ({"username": "bob"}, StanzaCondition.NOT_ACCEPTABLE),
        ({"username": "bob", "password": ""}, StanzaCondition.NOT_ACCEPTABLE),
        ({"password": PASSWORD}, StanzaCondition.NOT_ACCEPTABLE),
        ({"username": "bob", "password": "short"}, StanzaCondition.NOT_ACCEPTABLE),
        ({"username": "bob@evil", "password": PASSWORD}, StanzaCondition.JID_MALFORMED),
    ],
)
async def test_registration_refuses_bad_fields(
    host: Host, fields: dict[str, str], condition: StanzaCondition
) -> None:
    await host.load(RegisterModule, {"allow_registration": True})
    error = await stanza_error(host.preauth("set", query(ns.REGISTER, **fields)))
    assert error.condition is condition
    assert await host.server.accounts.users() == []


async def test_registration_is_throttled_per_ip(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    module = await host.load(RegisterModule, {"allow_registration": True})
    assert isinstance(module, RegisterModule)
    clock = FakeClock()
    module.throttle = SlidingWindow(3, 3600.0, clock)
    for n in range(3):
        form = query(ns.REGISTER, username=f"user{n}", password=PASSWORD)
        assert await host.preauth("set", form, ip="127.0.0.1") is None  # no loopback exemption
    fourth = query(ns.REGISTER, username="user3", password=PASSWORD)
    with caplog.at_level(logging.WARNING):
        error = await stanza_error(host.preauth("set", fourth, ip="127.0.0.1"))
    assert error.condition is StanzaCondition.RESOURCE_CONSTRAINT
    assert error.type is ErrorType.WAIT
    assert "127.0.0.1" in caplog.text
    assert not await host.server.accounts.exists(JID.parse("user3@example.org"))
    # Another address is not affected, and the window slides.
    assert await host.preauth("set", fourth, ip="198.51.100.7") is None
    clock.now += 3600.0
    other = query(ns.REGISTER, username="user4", password=PASSWORD)
    assert await host.preauth("set", other, ip="127.0.0.1") is None


def test_sliding_window_forgets_idle_addresses() -> None:
    clock = FakeClock()
    window = SlidingWindow(1, 10.0, clock)
    assert window.hit("a")
    assert not window.hit("a")
    clock.now += 10.0
    assert window.hit("b")
    assert len(window) == 1  # "a" was swept


@pytest.mark.parametrize(
    "options",
    [{"throttle_per_ip": 0}, {"throttle_window_s": 0.0}, {"min_password_length": 0}],
)
async def test_registration_refuses_out_of_range_options(
    host: Host, options: dict[str, object]
) -> None:
    with pytest.raises(ConfigError):
        await host.load(RegisterModule, options)


# --- the logged-in user's own account ---------------------------------------------------
@pytest.fixture
async def alice(host: Host) -> Host:
    await host.server.accounts.create(JID.parse("alice@example.org"), PASSWORD)
    await host.load(RegisterModule)
    return host


async def test_registered_user_is_told_so(alice: Host) -> None:
    result = await alice.iq("get", query(ns.REGISTER))
    assert result is not None
    assert result.find("registered") is not None
    assert result.child_text("username") == "alice"
    assert result.find("password") is None


async def test_password_change(alice: Host) -> None:
    before = await alice.server.store.get_keys("alice", DOMAIN)
    form = query(ns.REGISTER, username="alice", password="a new passphrase")
    assert await alice.iq("set", form, Target.SELF, to="alice@example.org") is None
    assert await alice.server.store.get_keys("alice", DOMAIN) != before


@pytest.mark.parametrize(
    ("fields", "condition"),
    [
        ({"username": "bob", "password": "a new passphrase"}, StanzaCondition.NOT_ALLOWED),
        ({"username": "alice", "password": ""}, StanzaCondition.BAD_REQUEST),
        ({"username": "alice"}, StanzaCondition.BAD_REQUEST),
        ({"username": "alice", "password": "short"}, StanzaCondition.NOT_ACCEPTABLE),
    ],
)
async def test_password_change_refused(
    alice: Host, fields: dict[str, str], condition: StanzaCondition
) -> None:
    before = await alice.server.store.get_keys("alice", DOMAIN)
    error = await stanza_error(alice.iq("set", query(ns.REGISTER, **fields)))
    assert error.condition is condition
    assert await alice.server.store.get_keys("alice", DOMAIN) == before


async def test_account_removal(alice: Host) -> None:
    payload = query(ns.REGISTER)
    payload.add("remove")
    assert await alice.iq("set", payload) is None
    assert not await alice.server.accounts.exists(JID.parse("alice@example.org"))


async def test_account_removal_needs_remove_alone(alice: Host) -> None:
    payload = query(ns.REGISTER, username="alice")
    payload.add("remove")
    error = await stanza_error(alice.iq("set", payload))
    assert error.condition is StanzaCondition.BAD_REQUEST
    assert await alice.server.accounts.exists(JID.parse("alice@example.org"))


async def test_unloading_registration_withdraws_everything(host: Host) -> None:
    await host.load(RegisterModule, {"allow_registration": True})
    assert host.registry.preauth_iq
    assert ns.REGISTER in host.registry.features
    await host.manager.unload("register")
    assert host.registry.preauth_iq == {}
    assert host.registry.preauth_features == []
    assert ns.REGISTER not in host.registry.features
    assert host.registry.find_iq_handler("set", ns.REGISTER, Target.HOST) is None


# --- the catalogue ----------------------------------------------------------------------
def test_catalogue_names_every_default_module() -> None:
    assert set(DEFAULT_MODULES) <= set(AVAILABLE)
    for name, cls in AVAILABLE.items():
        assert cls.name == name


# --- invitations (XEP-0445) -------------------------------------------------------------
async def invitation(host: Host, uses: int = 1, expires_in: float = 3600.0) -> str:
    expires = time.time() + expires_in
    return await SqlInvitationStore(host.server.db_or_fail()).create(DOMAIN, uses, expires)


async def test_invitation_only_registration(host: Host) -> None:
    await host.load(RegisterModule, {"allow_registration": True, "invitation_only": True})
    form = query(ns.REGISTER, username="carol", password=PASSWORD)
    error = await stanza_error(host.preauth("set", form, state={}))
    assert error.condition is StanzaCondition.NOT_ALLOWED  # no token, no account
    token = await invitation(host, uses=1)
    state: dict[str, object] = {}
    preauth = Element("preauth", ns.PARS, {"token": token})
    assert await host.preauth("set", preauth, state=state) is None
    assert await host.preauth("set", form, state=state) is None
    assert await host.server.accounts.exists(JID.parse("carol@example.org"))
    # Used up: the same token cannot make a second account, on this stream or another.
    again: dict[str, object] = {}
    error = await stanza_error(host.preauth("set", preauth, ip="192.0.2.9", state=again))
    assert error.condition is StanzaCondition.ITEM_NOT_FOUND


async def test_invitation_is_spent_only_by_a_successful_registration(host: Host) -> None:
    await host.load(RegisterModule, {"allow_registration": True, "invitation_only": True})
    await host.server.accounts.create(JID.parse("taken@example.org"), PASSWORD)
    token = await invitation(host, uses=1)
    state: dict[str, object] = {}
    assert (
        await host.preauth("set", Element("preauth", ns.PARS, {"token": token}), state=state)
        is None
    )
    taken = query(ns.REGISTER, username="taken", password=PASSWORD)
    error = await stanza_error(host.preauth("set", taken, state=state))
    assert error.condition is StanzaCondition.CONFLICT
    free = query(ns.REGISTER, username="dave", password=PASSWORD)
    assert await host.preauth("set", free, state=state) is None  # the use was given back


async def test_expired_or_unknown_invitations_are_refused(host: Host) -> None:
    await host.load(RegisterModule, {"allow_registration": True, "invitation_only": True})
    expired = await invitation(host, expires_in=-1.0)
    for token in (expired, "made-up-token"):
        error = await stanza_error(
            host.preauth("set", Element("preauth", ns.PARS, {"token": token}), state={})
        )
        assert error.condition is StanzaCondition.ITEM_NOT_FOUND


async def test_invitation_only_needs_registration_enabled(host: Host) -> None:
    with pytest.raises(ConfigError, match="invitation_only"):
        await host.load(RegisterModule, {"invitation_only": True})
