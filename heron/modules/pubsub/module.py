"""XEP-0060 Publish-Subscribe at ``pubsub.DOMAIN`` and XEP-0163 PEP on every account.

Both run the same engine (``engine.py``); this module loads each pubsub JID's nodes from
the store once, hands requests to the codec (``codec.py``), stores what changed before
answering, and sends the notifications.

- The service (option ``service``, default ``pubsub.<host>``): users of the host create
  nodes; anyone may subscribe and read where the access model lets them. Nodes are leaves;
  collection nodes (XEP-0248) are not offered.
- PEP: an account's bare JID is its own pubsub service; it owns every node, and a publish
  creates the node (XEP-0163 §3), configured by the publish-options. Access models
  ``presence`` and ``roster`` are decided on the owner's roster (the roster's ``contacts``
  service). Who hears of changes: ``pep.py``; avatars and bookmarks kept the same as the
  vCard and private XML storage: ``sync.py``.
- Access model ``authorize`` (§6.1.2, §8.6): a subscription stays pending and each owner
  gets a ``subscribe_authorization`` form in a message; the owner submits it back in a
  message to the service (for PEP: to its own bare JID), or sets the subscription (§8.8.2).
- Subscription options (§6.3, §6.4): ``pubsub#deliver``, and on a collection
  ``pubsub#subscription_type`` and ``pubsub#subscription_depth`` (§9, ``collections.py``);
  the ``pubsub`` error conditions follow XEP-0060 §6-§8.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Final

from heron import ns
from heron.config import option
from heron.core.module import Module, ModuleContext, Xep, hook, iq_handler
from heron.core.registry import HostRegistry, Identity, Target
from heron.jid import JID
from heron.modules.pubsub import codec
from heron.modules.pubsub.codec import FEATURES
from heron.modules.pubsub.config import NodeConfig
from heron.modules.pubsub.engine import (
    NO_RELATION,
    Outbox,
    Policy,
    PubsubService,
    Relation,
)
from heron.modules.pubsub.pep import PepTargets
from heron.modules.pubsub.store import PubsubStore, SqlPubsubStore
from heron.modules.pubsub.sync import Mirror, PepSync
from heron.stanza import Stanza, StanzaCondition, StanzaError, iq_result
from heron.stanza.forms import form_type
from heron.xmlstream import Limits
from heron.xmlstream.element import Element

PEP_IDENTITY: Final = Identity("pubsub", "pep")
PEP_DEFAULT: Final = NodeConfig(access_model="presence", max_items=1)
C = StanzaCondition


@dataclass(frozen=True, slots=True)
class PubsubOptions:
    service: str = ""
    """The service's domain; default ``pubsub.<host>``."""
    pep: bool = True
    """Serve PEP (XEP-0163) on every account's bare JID."""
    max_items: int = option(256, min=1)
    """Items a node keeps at most (what ``max`` means)."""
    max_payload_bytes: int = option(65536, min=1, max=Limits().max_stanza_bytes)
    """Largest item payload, in bytes of serialized XML."""
    max_nodes: int = option(1000, min=1)
    """Nodes at most on the service, and on each account's PEP."""
    create_nodes: str = option("users", choices=("users", "admins"))
    """Who creates nodes on the service: the host's users, or only its admins (who always
    may)."""


class PubsubModule(Module):
    name = "pubsub"
    description = "Publish-subscribe service and personal eventing (PEP) on every account"
    xeps = (
        Xep(
            60,
            "1.26.0",
            "partial",
            "leaf and collection nodes (one collection per node) with configuration, "
            "publish-options, retract, purge, subscriptions, affiliations, every access "
            "model, item paging; subscription options: deliver, and type and depth on "
            "collections (no digests, expiry or presence-based delivery)",
        ),
        Xep(163, "1.2.2", "complete", "with access models decided on the owner's roster"),
        Xep(115, "1.6.0", "complete", "clients' caps verified and cached for PEP +notify"),
        Xep(223, "1.1.1", "complete", "private storage with whitelist publish-options"),
        Xep(59, "1.0", "complete", "paging of pubsub items"),
        Xep(402, "1.2.0", "complete", "kept the same as XEP-0048 private storage (§5.3)"),
        Xep(411, "1.1.0", "complete", "as XEP-0402's #compat conversion (XEP-0411 is deprecated)"),
        Xep(84, "1.1.4", "complete", "avatars on PEP, mirrored to the vCard (XEP-0398)"),
        Xep(384, "0.8.3", "complete", "device lists and bundles on PEP (open access)"),
        Xep(172, "1.1", "complete", "user nickname on PEP"),
    )
    # PEP avatars and bookmarks are kept the same as the vCard and private XML storage
    # through the services these two offer (sync.py): they start first (with PEP on).
    requires = ("vcard", "private")
    stores = (SqlPubsubStore,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(PubsubOptions)
        self.store: PubsubStore = ctx.store(SqlPubsubStore)
        self.domain = self.options.service or f"pubsub.{ctx.domain}"
        self.services: dict[JID, PubsubService] = {}
        self._loading: dict[JID, asyncio.Lock] = {}
        self.pep = PepTargets(self)
        self.sync = PepSync(self)

    def needs(self) -> tuple[str, ...]:
        """Without PEP there are no account avatars or bookmarks to keep in step."""
        return type(self).requires if self.options.pep else ()

    async def start(self) -> None:
        service = self.ctx.add_service(self.domain)  # withdrawn, with its handlers, on unload
        for type_ in ("get", "set"):
            service.add_iq_handler(type_, ns.PUBSUB, Target.HOST, self.on_pubsub)
            service.add_iq_handler(type_, ns.PUBSUB_OWNER, Target.HOST, self.on_pubsub)
        service.add_iq_handler("get", ns.DISCO_INFO, Target.HOST, self.service_info)
        service.add_iq_handler("get", ns.DISCO_ITEMS, Target.HOST, self.service_items)
        service.add_hook("message/host", self.on_authorization, 50)
        self.ctx.add_item(self.domain, "Publish-subscribe")
        if self.options.pep:
            self._offer_pep(self.ctx.registry)

    def _offer_pep(self, host: HostRegistry) -> None:
        """PEP's entries in the host's tables, taken out again when the module unloads."""
        for feature in (*FEATURES, f"{ns.PUBSUB}#auto-subscribe", ns.VCARD_CONVERSION):
            self.ctx.add_account_feature(feature)  # XEP-0163 §6.1, XEP-0398 §2
        self.ctx.add_account_feature(ns.BOOKMARKS_COMPAT)  # XEP-0402 §5.3
        host.add_feature(f"{ns.PUBSUB}#pep")  # a hint for clients that look at the server
        host.account_identities.append(PEP_IDENTITY)  # XEP-0163 §6.1
        host.account_items = self  # XEP-0030 for an account's nodes
        host.pep_avatar = self.sync
        host.private_watcher = self.sync
        self.ctx.on_account_deleted(self.on_account_deleted)

        def withdraw() -> None:
            host.remove_feature(f"{ns.PUBSUB}#pep")
            host.account_identities.remove(PEP_IDENTITY)
            if host.account_items is self:
                host.account_items = None
            if host.pep_avatar is self.sync:
                host.pep_avatar = None
            if host.private_watcher is self.sync:
                host.private_watcher = None

        self.ctx.on_unload(withdraw)

    # --- services -----------------------------------------------------------------------
    async def service(self, jid: JID) -> PubsubService:
        """The service of ``jid`` (the pubsub domain, or an account), loaded once."""
        found = self.services.get(jid)
        if found is not None:
            return found
        lock = self._loading.setdefault(jid, asyncio.Lock())
        async with lock:
            found = self.services.get(jid)
            if found is None:
                is_pep = jid.local is not None
                policy = Policy(
                    max_items=self.options.max_items,
                    max_payload_bytes=self.options.max_payload_bytes,
                    max_nodes=self.options.max_nodes,
                    default_config=PEP_DEFAULT if is_pep else NodeConfig(),
                )
                found = PubsubService(jid, policy, owner=jid if is_pep else None)
                if is_pep and not await self.ctx.router.user_exists(jid):
                    # No such account: an empty service, not kept (a stranger asking about
                    # many made-up JIDs must not fill memory), and answered like an
                    # account without that node, so nothing tells which accounts exist.
                    self._loading.pop(jid, None)
                    return found
                await self.store.load(found)
                self.services[jid] = found
        self._loading.pop(jid, None)
        return found

    def is_loaded(self, jid: JID) -> bool:
        """True when ``jid``'s service is kept (for PEP: the account exists)."""
        return jid in self.services

    async def relation(self, owner: JID | None, other: JID) -> Relation:
        """How ``other`` stands in ``owner``'s roster (for presence and roster access)."""
        contacts = self.ctx.registry.contacts
        if owner is None or contacts is None or owner.local is None:
            return NO_RELATION
        if owner.domain != self.ctx.domain:
            return NO_RELATION
        entry = await contacts.contact(owner, other.bare)
        return Relation(
            entry.subscription in ("from", "both"), entry.in_roster, frozenset(entry.groups)
        )

    async def relation_for(self, svc: PubsubService, name: str | None, who: JID) -> Relation:
        node = svc.nodes.get(name or "")
        if node is None or node.config.access_model not in ("presence", "roster"):
            return NO_RELATION
        owner = svc.owner or next(
            (j for j, a in sorted(node.affiliations.items(), key=str) if a == "owner"), None
        )
        return await self.relation(owner, who)

    def _may_create(self, svc: PubsubService, sender: JID) -> bool:
        if svc.owner is not None:
            return sender.bare == svc.owner
        if self.ctx.is_admin(sender):
            return True  # the service's administrators, whatever the restriction
        if self.options.create_nodes == "admins":
            return False
        return sender.domain == self.ctx.domain and sender.local is not None

    # --- requests -----------------------------------------------------------------------
    @iq_handler("get", ns.PUBSUB, Target.SELF | Target.BARE)
    @iq_handler("set", ns.PUBSUB, Target.SELF | Target.BARE)
    @iq_handler("get", ns.PUBSUB_OWNER, Target.SELF | Target.BARE)
    @iq_handler("set", ns.PUBSUB_OWNER, Target.SELF | Target.BARE)
    async def on_pep(self, iq: Stanza) -> Element | None:
        """XEP-0163: pubsub on an account's bare JID."""
        if not self.options.pep:
            raise StanzaError(C.SERVICE_UNAVAILABLE)
        return await self.on_pubsub(iq)

    async def on_pubsub(self, iq: Stanza) -> Element | None:
        assert iq.to is not None
        payload = iq.query
        if payload.tag != "pubsub":
            raise StanzaError(C.BAD_REQUEST, "expected a <pubsub/> element")
        target = iq.to.bare if iq.to.local is not None else JID.parse(self.domain)
        svc = await self.service(target)
        is_pep_change = svc.owner is not None and iq.type == "set"
        svc.audience = await self.pep.audience(svc) if is_pep_change else None
        try:
            if payload.ns == ns.PUBSUB_OWNER:
                result = codec.owner_request(svc, iq, payload)
            else:
                may_create = self._may_create(svc, iq.sender)
                result = await codec.user_request(svc, iq, payload, self.relation_for, may_create)
        finally:
            svc.audience = None
            out = svc.drain()
        mirror = self.sync.mirror_for(codec.verb(payload)) if is_pep_change else None
        await self.commit(svc, out, iq, result, mirror)
        return None

    async def commit(
        self,
        svc: PubsubService,
        out: Outbox,
        iq: Stanza | None = None,
        result: Element | None = None,
        mirror: Mirror | None = None,
    ) -> None:
        """Durable first (with its copy in the older protocol, ``mirror``, so that a
        client told of success finds it there too), then the answer, then the
        notifications (§7.1.2: the publisher hears of success before subscribers hear of
        the item)."""
        await self.store.save(svc, out)
        if mirror is not None:
            await mirror(svc)
        if iq is not None:
            self.ctx.router.reply(iq, iq_result(iq, result))
            iq.meta["answered"] = True
        for note in out.notifications:
            await self.ctx.send(
                codec.notification(
                    svc, note.to, note.type, note.event, uuid.uuid4().hex, note.collection
                )
            )

    @hook("message/self", 50)
    async def on_pep_authorization(self, stanza: Stanza) -> bool:
        return self.options.pep and await self.on_authorization(stanza)

    async def on_authorization(self, stanza: Stanza) -> bool:
        """§8.6: an owner's answer to a subscription request, a submitted form in a message
        to the service (or, for PEP, to the owner's own bare JID)."""
        form = stanza.element.find("x", ns.DATA_FORMS)
        sender = stanza.from_
        if form is None or sender is None or stanza.type == "error":
            return False
        if form_type(form) != ns.PUBSUB_SUBSCRIBE_AUTHORIZATION:
            return False
        target = stanza.to.bare if stanza.to is not None else sender.bare
        if target.local is None:
            target = JID.parse(self.domain)
        svc = await self.service(target)
        try:
            svc.authorize(sender, form)
        except StanzaError as exc:
            svc.drain()  # nothing changed
            self.ctx.router.bounce(stanza, exc)
            return True
        await self.commit(svc, svc.drain())
        return True

    # --- PEP: presence and caps tell who follows what (pep.py) ----------------------------
    @hook("pre-presence", 20)
    async def on_own_presence(self, stanza: Stanza) -> bool:
        if self.options.pep:
            await self.pep.own_presence(stanza)
        return False

    @hook("presence/bare", 20)
    @hook("presence/full", 20)
    async def on_presence(self, stanza: Stanza) -> bool:
        if self.options.pep:
            await self.pep.presence(stanza)
        return False

    @hook("session/ended", 20)
    async def on_session_ended(self, stanza: Stanza) -> bool:
        if stanza.from_ is not None:
            self.pep.session_ended(stanza.from_)
        return False

    @hook("iq/host", 60)
    async def on_caps_answer(self, stanza: Stanza) -> bool:
        return await self.pep.caps_answer(stanza)

    # --- PEP seen from other modules (registry services) ---------------------------------
    async def account_items(self, account: JID, asker: JID) -> list[Element]:
        """XEP-0163 §6.2 (and XEP-0060 §5.2): the account's nodes ``asker`` may read."""
        if not self.options.pep or account.domain != self.ctx.domain:
            return []
        svc = await self.service(account)
        relation = NO_RELATION
        if asker.bare != account and svc.nodes:
            relation = await self.relation(account, asker)
        return [
            Element("item", ns.DISCO_ITEMS, {"jid": str(account), "node": node.name})
            for node in sorted(svc.nodes.values(), key=lambda n: n.name)
            if svc.may_access(node, asker, relation)
        ]

    async def on_account_deleted(self, account: JID) -> None:
        """The account is gone, and its PEP nodes and items went with its row: drop what is
        held in memory, and its affiliations and subscriptions on other nodes (a node it
        alone owned stays, owned by no one, rather than pass to whoever takes the name)."""
        self.services.pop(account, None)
        self.pep.account_deleted(account)
        for changed in await self.store.forget_entity(account):
            self.services.pop(changed, None)  # read again, without it, when next asked

    # --- disco of the service (XEP-0060 §5) ----------------------------------------------
    async def service_info(self, iq: Stanza) -> Element | None:
        assert iq.from_ is not None
        payload = iq.payload
        name = payload.attrs.get("node") if payload is not None else None
        query = Element("query", ns.DISCO_INFO)
        if name:
            svc = await self.service(JID.parse(self.domain))
            node = svc.nodes.get(name)
            relation = await self.relation_for(svc, name, iq.from_)
            if node is None or not svc.may_access(node, iq.from_, relation):
                raise StanzaError(C.ITEM_NOT_FOUND, f"no node {name!r}")
            query.attrs["node"] = name
            kind = node.config.node_type  # "leaf" or "collection" (XEP-0060 §5.3)
            query.add("identity", ns.DISCO_INFO, {"category": "pubsub", "type": kind})
            query.add("feature", ns.DISCO_INFO, {"var": ns.PUBSUB})
            return query
        query.add("identity", ns.DISCO_INFO, {"category": "pubsub", "type": "service"})
        for feature in (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PUBSUB, *FEATURES):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        return query

    async def service_items(self, iq: Stanza) -> Element | None:
        """§5.2: the nodes the asker may see; §5.5 the item ids of one node."""
        assert iq.from_ is not None
        svc = await self.service(JID.parse(self.domain))
        payload = iq.payload
        name = payload.attrs.get("node") if payload is not None else None
        query = Element("query", ns.DISCO_ITEMS)
        if name and name in svc.nodes and svc.nodes[name].config.node_type == "collection":
            query.attrs["node"] = name  # a collection's items are its nodes (XEP-0248 §5.2)
            for child in svc.children(name, iq.from_):
                query.add("item", ns.DISCO_ITEMS, {"jid": self.domain, "node": child})
            return query
        if name:
            relation = await self.relation_for(svc, name, iq.from_)
            _node, items, _ = svc.items(name, iq.from_, relation)
            query.attrs["node"] = name
            for item in items:
                query.add("item", ns.DISCO_ITEMS, {"jid": self.domain, "name": item.id})
            return query
        for node in sorted(svc.nodes.values(), key=lambda n: n.name):
            relation = await self.relation_for(svc, node.name, iq.from_)
            if svc.may_access(node, iq.from_, relation):
                attrs = {"jid": self.domain, "node": node.name}
                if node.config.title:
                    attrs["name"] = node.config.title
                query.add("item", ns.DISCO_ITEMS, attrs)
        return query
