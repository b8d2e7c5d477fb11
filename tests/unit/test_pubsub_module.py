"""The pubsub module as the module manager loads it: what it requires of other modules,
its option bounds, and everything it registers (a service domain, PEP's entries in the
host's tables, the services vcard and private talk to) withdrawn on unload without a
stop() of its own."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from heron import ns
from heron.config import ConfigError
from heron.core.accounts import AccountService
from heron.core.module import Module, ModuleManager
from heron.core.registry import HostRegistry, Target
from heron.jid import JID
from heron.modules import PrivateModule, PubsubModule, VcardModule
from heron.modules.pubsub.module import PEP_IDENTITY
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.storage.accounts import SqlAccountStore
from heron.storage.sqlite import SqliteDatabase
from heron.xmlstream.element import Element
from tests.modulecore import FakeDomains, make_core

DOMAIN = "example.org"
PUBSUB = "http://jabber.org/protocol/pubsub"
BOOKMARKS_COMPAT = "urn:xmpp:bookmarks:1#compat"


class Host:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.registry = HostRegistry(DOMAIN)
        self.manager = ModuleManager(self.registry)
        accounts = AccountService(SqlAccountStore(db), secret=b"x" * 32, iterations=4096)
        self.core = make_core(db, accounts, {DOMAIN: self.registry})

    @property
    def domains(self) -> FakeDomains:
        assert isinstance(self.core.domains, FakeDomains)
        return self.core.domains

    async def load(self, cls: type[Module], options: Mapping[str, object] | None = None) -> Module:
        for store in cls.stores:  # what the server does before any module starts
            await self.db.migrate(store.migrations_for(self.db.dialect))
        ctx = self.core.for_module(
            domain=DOMAIN,
            name=cls.name,
            registry=self.registry,
            options=options or {},
            log=logging.LoggerAdapter(logging.getLogger(f"heron.modules.{cls.name}"), {}),
        )
        return await self.manager.load(cls, ctx)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    db = await SqliteDatabase.open(tmp_path / "heron.db")
    await db.migrate(SqlAccountStore.migrations_for("sqlite"))
    try:
        yield Host(db)
    finally:
        await db.close()


async def test_pubsub_requires_vcard_and_private(host: Host) -> None:
    with pytest.raises(ConfigError, match=r'hosts\."example\.org"\.modules: pubsub needs vcard'):
        await host.load(PubsubModule)
    await host.load(VcardModule)
    with pytest.raises(ConfigError, match="pubsub needs private"):
        await host.load(PubsubModule)
    await host.load(PrivateModule)
    await host.load(PubsubModule)
    assert "pubsub" in host.manager.modules


async def test_without_pep_pubsub_needs_neither(host: Host) -> None:
    await host.load(PubsubModule, {"pep": False})  # no accounts' avatars or bookmarks to sync
    assert "pubsub" in host.manager.modules


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"max_items": 0}, "modules.pubsub.max_items: must be ≥ 1"),
        ({"max_nodes": 0}, "modules.pubsub.max_nodes: must be ≥ 1"),
        ({"max_payload_bytes": 0}, "modules.pubsub.max_payload_bytes: must be between 1 and"),
        ({"max_payload_bytes": 10**9}, "modules.pubsub.max_payload_bytes: must be between 1"),
        ({"pep": "yes please"}, "modules.pubsub.pep"),
    ],
)
async def test_option_bounds_name_the_key(
    host: Host, options: dict[str, object], says: str
) -> None:
    await host.load(VcardModule)
    await host.load(PrivateModule)
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
        await host.load(PubsubModule, options)
    assert "pubsub.example.org" not in host.domains.registries  # nothing half-applied


def hooks(registry: HostRegistry) -> dict[str, int]:
    return {event: len(entries) for event, entries in registry.hooks.items() if entries}


def pep_handler(registry: HostRegistry) -> object:
    return registry.find_iq_handler("set", PUBSUB, Target.SELF)


async def test_everything_registered_is_withdrawn_on_unload(host: Host) -> None:
    reg = host.registry
    await host.load(VcardModule)
    await host.load(PrivateModule)
    vcard_avatar, private_xml = reg.vcard_avatar, reg.private_xml
    assert vcard_avatar is not None
    assert private_xml is not None
    before = (set(reg.account_features), dict(reg.features), len(reg.account_deleted))
    hooks_before = hooks(reg)

    module = await host.load(PubsubModule, {"service": "events.example.org"})
    assert isinstance(module, PubsubModule)
    assert "events.example.org" in host.domains.registries
    assert reg.items["events.example.org"] == "Publish-subscribe"
    assert {ns.VCARD_CONVERSION, BOOKMARKS_COMPAT, f"{PUBSUB}#publish"} <= reg.account_features
    assert f"{PUBSUB}#pep" in reg.features
    assert PEP_IDENTITY in reg.account_identities
    assert reg.account_items is module
    assert reg.pep_avatar is module.sync
    assert reg.private_watcher is module.sync
    assert module.on_account_deleted in reg.account_deleted
    assert pep_handler(reg) is not None
    assert reg.hooks["presence/full"]

    await host.manager.unload("pubsub")
    assert "events.example.org" not in host.domains.registries
    assert "events.example.org" not in reg.items
    assert (set(reg.account_features), dict(reg.features), len(reg.account_deleted)) == before
    assert PEP_IDENTITY not in reg.account_identities
    assert (reg.account_items, reg.pep_avatar, reg.private_watcher) == (None, None, None)
    assert pep_handler(reg) is None
    assert hooks(reg) == hooks_before
    # What vcard and private offer stays theirs.
    assert (reg.vcard_avatar, reg.private_xml) == (vcard_avatar, private_xml)


async def test_without_pep_accounts_offer_no_pubsub(host: Host) -> None:
    reg = host.registry
    await host.load(VcardModule)
    await host.load(PrivateModule)
    await host.load(PubsubModule, {"pep": False})
    assert "pubsub.example.org" in host.domains.registries  # the service still runs
    assert not any(f.startswith(PUBSUB) for f in reg.account_features)
    assert reg.account_items is None
    assert reg.pep_avatar is None
    handler = reg.find_iq_handler("get", PUBSUB, Target.BARE)
    assert handler is not None
    iq = Element("iq", ns.CLIENT, {"type": "get", "id": "q"})
    iq.add("pubsub", PUBSUB).add("items", PUBSUB, {"node": "urn:xmpp:avatar:metadata"})
    with pytest.raises(StanzaError) as refused:
        await handler(Stanza(iq, JID.parse("alice@example.org"), JID.parse("bob@example.org/x")))
    assert refused.value.condition == StanzaCondition.SERVICE_UNAVAILABLE
