"""XEP-0060 Publish-Subscribe at ``pubsub.DOMAIN`` and XEP-0163 PEP on every account.

Both run the same engine (``heron.modules.pubsub.engine``); this module reads and writes the XML,
stores what changed (``heron.modules.pubsub.store``) before answering, and sends notifications.

- The service (option ``service``, default ``pubsub.<host>``): users of the host create
  nodes; anyone may subscribe and read where the access model lets them. Nodes are leaves;
  collection nodes (XEP-0248) are not offered.
- PEP: an account's bare JID is its own pubsub service; it owns every node, and a publish
  creates the node (XEP-0163 §3), configured by the publish-options. Access models
  ``presence`` and ``roster`` are decided on the owner's roster. Contacts and the owner's own
  resources get notifications when their entity capabilities (XEP-0115) advertise
  ``NODE+notify``: Heron asks a client with unknown caps for its disco#info, checks the
  hash, and caches features per ver. The last item goes to such a resource when it comes
  online (``send_last_published_item`` on_sub_and_presence).
- Access model ``authorize`` (§6.1.2, §8.6): a subscription stays pending and each owner
  gets a ``subscribe_authorization`` form in a message; the owner submits it back in a
  message to the service (for PEP: to its own bare JID), or sets the subscription (§8.8.2).
- Subscription options (§6.3, §6.4): ``pubsub#deliver`` only; the ``pubsub`` error
  conditions follow XEP-0060 §6-§8.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from heron import ns
from heron.config import ConfigError, build_options, option
from heron.core.module import Module, Xep
from heron.core.registry import Avatar, HostRegistry, Identity, Target
from heron.jid import JID, InvalidJID
from heron.modules.pubsub import avatar as avatars
from heron.modules.pubsub import bookmarks
from heron.modules.pubsub.config import NodeConfig, config_form
from heron.modules.pubsub.config import form_type as config_form_type
from heron.modules.pubsub.engine import (
    EVENT,
    NO_RELATION,
    SUBSCRIBE_AUTHORIZATION,
    Node,
    Outbox,
    Page,
    PageInfo,
    Policy,
    PubsubService,
    Relation,
    options_form,
)
from heron.modules.pubsub.errors import error
from heron.modules.pubsub.store import PubsubStore, SqlPubsubStore
from heron.stanza import Stanza, StanzaCondition, StanzaError, iq_result
from heron.stanza.caps import Caps, CapsCache
from heron.xmlstream import Limits
from heron.xmlstream.element import Element

PUBSUB: Final = "http://jabber.org/protocol/pubsub"
OWNER: Final = "http://jabber.org/protocol/pubsub#owner"
RSM: Final = "http://jabber.org/protocol/rsm"
DATA: Final = "jabber:x:data"
VCARD_CONVERSION: Final = "urn:xmpp:pep-vcard-conversion:0"
PEP_IDENTITY: Final = Identity("pubsub", "pep")
C = StanzaCondition
log = logging.getLogger(__name__)

FEATURES: Final = tuple(
    f"{PUBSUB}#{f}"
    for f in (
        "access-authorize",
        "access-open",
        "access-presence",
        "access-roster",
        "access-whitelist",
        "auto-create",
        "config-node",
        "create-and-configure",
        "create-nodes",
        "delete-items",
        "delete-nodes",
        "filtered-notifications",
        "instant-nodes",
        "item-ids",
        "last-published",
        "manage-subscriptions",
        "modify-affiliations",
        "multi-items",
        "persistent-items",
        "publish",
        "publish-options",
        "purge-nodes",
        "retract-items",
        "retrieve-affiliations",
        "retrieve-default",
        "retrieve-items",
        "retrieve-subscriptions",
        "subscribe",
        "subscription-notifications",
        "subscription-options",
    )
)


@dataclass(frozen=True, slots=True)
class PubsubOptions:
    service: str = ""
    """The service's domain; default ``pubsub.<host>``."""
    pep: bool = True
    """Serve PEP (XEP-0163) on every account's bare JID."""
    max_items: int = 256
    """Items a node keeps at most (what ``max`` means)."""
    max_payload_bytes: int = 65536
    """Largest item payload, in bytes of serialized XML."""
    max_nodes: int = 1000
    """Nodes at most on the service, and on each account's PEP."""
    create_nodes: str = option("users", choices=("users", "admins"))
    """Who creates nodes on the service: the host's users, or only its admins (who always
    may)."""


PEP_DEFAULT: Final = NodeConfig(access_model="presence", max_items=1)


class PubsubModule(Module):
    name = "pubsub"
    description = "Publish-subscribe service and personal eventing (PEP) on every account"
    xeps = (
        Xep(
            60,
            "1.26.0",
            "partial",
            "leaf nodes with configuration, publish-options, retract, purge, subscriptions "
            "(options: pubsub#deliver only), affiliations, every access model, item paging; "
            "no collection nodes",
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
    stores = (SqlPubsubStore,)

    async def start(self) -> None:
        path = f'hosts."{self.ctx.domain}".modules.pubsub'
        self.options = options = build_options(PubsubOptions, self.ctx.options, path)
        stanza_limit = Limits().max_stanza_bytes
        if not 1 <= options.max_payload_bytes <= stanza_limit:
            raise ConfigError(f"{path}.max_payload_bytes: must be between 1 and {stanza_limit}")
        if options.max_items < 1 or options.max_nodes < 1:
            raise ConfigError(f"{path}: max_items and max_nodes must be ≥ 1")
        self.store: PubsubStore = self.ctx.store(SqlPubsubStore)
        self.domain = options.service or f"pubsub.{self.ctx.domain}"
        self.services: dict[JID, PubsubService] = {}
        self._loading: dict[JID, asyncio.Lock] = {}
        # PEP: per account, the full JIDs whose presence it received (its own resources
        # too), with their caps; their features once known; disco queries in flight.
        self.seen: dict[JID, dict[JID, Caps | None]] = {}
        self.features: dict[JID, frozenset[str]] = {}
        self.asked: dict[str, tuple[JID, Caps]] = {}
        self.caps = CapsCache()
        registry = self.service_registry = self.ctx.add_service(self.domain)
        for type_ in ("get", "set"):
            registry.add_iq_handler(type_, PUBSUB, Target.HOST, self.on_pubsub)
            registry.add_iq_handler(type_, OWNER, Target.HOST, self.on_pubsub)
        registry.add_iq_handler("get", ns.DISCO_INFO, Target.HOST, self.service_info)
        registry.add_iq_handler("get", ns.DISCO_ITEMS, Target.HOST, self.service_items)
        registry.add_hook("message/host", self.on_authorization, 50)
        host: HostRegistry = self.ctx.registry
        host.items[self.domain] = "Publish-subscribe"  # found in the host's disco#items
        if options.pep:
            for type_ in ("get", "set"):
                host.add_iq_handler(type_, PUBSUB, Target.SELF | Target.BARE, self.on_pubsub)
                host.add_iq_handler(type_, OWNER, Target.SELF | Target.BARE, self.on_pubsub)
            host.account_features.update((*FEATURES, f"{PUBSUB}#auto-subscribe"))
            host.add_hook("presence/bare", self.on_presence, 20)
            host.add_hook("presence/full", self.on_presence, 20)
            host.add_hook("pre-presence", self.on_own_presence, 20)
            host.add_hook("session/ended", self.on_session_ended, 20)
            host.add_hook("iq/host", self.on_caps_answer, 60)
            host.add_hook("message/self", self.on_authorization, 50)
            host.add_feature(f"{PUBSUB}#pep")  # hint for clients that look at the server
            # XEP-0163 §6.1, XEP-0030 for the nodes; the services other modules use.
            host.account_identities.append(PEP_IDENTITY)
            host.account_items = self
            host.pep_avatar = self
            host.private_watcher = self
            host.account_deleted.append(self.on_account_deleted)
            if host.vcard_avatar is not None:
                host.account_features.add(VCARD_CONVERSION)  # XEP-0398 §2
            if host.private_xml is not None:
                host.account_features.add(bookmarks.COMPAT)  # XEP-0402 §5.3

    async def stop(self) -> None:
        host = self.ctx.registry
        host.items.pop(self.domain, None)
        if self.options.pep:
            for type_ in ("get", "set"):
                host.remove_iq_handler(type_, PUBSUB, self.on_pubsub)
                host.remove_iq_handler(type_, OWNER, self.on_pubsub)
            host.account_features.difference_update((*FEATURES, f"{PUBSUB}#auto-subscribe"))
            host.remove_hook("presence/bare", self.on_presence)
            host.remove_hook("presence/full", self.on_presence)
            host.remove_hook("pre-presence", self.on_own_presence)
            host.remove_hook("session/ended", self.on_session_ended)
            host.remove_hook("iq/host", self.on_caps_answer)
            host.remove_hook("message/self", self.on_authorization)
            host.remove_feature(f"{PUBSUB}#pep")
            host.account_identities.remove(PEP_IDENTITY)
            host.account_features.difference_update((VCARD_CONVERSION, bookmarks.COMPAT))
            if host.account_items is self:
                host.account_items = None
            if host.pep_avatar is self:
                host.pep_avatar = None
            if host.private_watcher is self:
                host.private_watcher = None
            host.account_deleted.remove(self.on_account_deleted)

    # --- services -----------------------------------------------------------------------
    async def _service(self, jid: JID) -> PubsubService:
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

    async def _relation(self, owner: JID | None, other: JID) -> Relation:
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

    async def _relation_for(self, svc: PubsubService, name: str | None, who: JID) -> Relation:
        node = svc.nodes.get(name or "")
        if node is None or node.config.access_model not in ("presence", "roster"):
            return NO_RELATION
        owner = svc.owner or next(
            (j for j, a in sorted(node.affiliations.items(), key=str) if a == "owner"), None
        )
        return await self._relation(owner, who)

    # --- the IQ -------------------------------------------------------------------------
    async def on_pubsub(self, iq: Stanza) -> Element | None:
        assert iq.to is not None
        assert iq.from_ is not None
        payload = iq.payload
        assert payload is not None
        if payload.tag != "pubsub":
            raise StanzaError(C.BAD_REQUEST, "expected a <pubsub/> element")
        target = iq.to.bare if iq.to.local is not None else JID.parse(self.domain)
        svc = await self._service(target)
        is_pep_change = svc.owner is not None and iq.type == "set"
        audience = await self._audience(svc) if is_pep_change else None
        svc.audience = audience
        try:
            if payload.ns == OWNER:
                result = await self._owner(svc, iq, payload)
            else:
                result = await self._user(svc, iq, payload)
        finally:
            svc.audience = None
            out = svc.drain()
        mirror = None
        if is_pep_change:
            verb = _verb(payload)
            changed = verb.attrs.get("node")
            if verb.tag == "publish" and changed == avatars.AVATAR_METADATA:
                mirror = self._avatar_to_vcard
            elif changed == bookmarks.BOOKMARKS:
                mirror = self._bookmarks_to_private
        await self._commit(svc, out, iq, result, mirror)
        return None

    async def _commit(
        self,
        svc: PubsubService,
        out: Outbox,
        iq: Stanza | None,
        result: Element | None,
        mirror: Callable[[PubsubService], Awaitable[None]] | None = None,
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
            message = Element(
                "message",
                ns.CLIENT,
                {"from": str(svc.jid), "to": str(note.to), "type": note.type},
            )
            message.attrs["id"] = uuid.uuid4().hex
            message.append(note.event)
            await self.ctx.send(message)

    async def _user(self, svc: PubsubService, iq: Stanza, pubsub: Element) -> Element | None:
        assert iq.from_ is not None
        sender = iq.from_
        verb = _verb(pubsub)
        name = verb.attrs.get("node")
        tag, type_ = verb.tag, iq.type
        if type_ == "set" and tag == "create":
            if not self._may_create(svc, sender):
                raise StanzaError(C.FORBIDDEN, "you may not create nodes on this service")
            configure = pubsub.find("configure", PUBSUB)
            form = configure.find("x", DATA) if configure is not None else None
            node = svc.create(name, sender, form)
            return Element(
                "pubsub", PUBSUB, children=[Element("create", PUBSUB, {"node": node.name})]
            )
        if type_ == "set" and tag == "publish":
            items = verb.find_all("item", PUBSUB)
            if len(items) > 1:
                raise error(C.BAD_REQUEST, "invalid-payload", "publish one item at a time")
            options = pubsub.find("publish-options", PUBSUB)
            form = options.find("x", DATA) if options is not None else None
            item = svc.publish(
                name,
                sender,
                items[0] if items else None,
                form,
                may_create=self._may_create(svc, sender),
            )
            result = Element("pubsub", PUBSUB)
            result.add("publish", PUBSUB, {"node": name or ""}).add("item", PUBSUB, {"id": item.id})
            return result
        if type_ == "set" and tag == "retract":
            items = verb.find_all("item", PUBSUB)
            if not items:
                raise error(C.BAD_REQUEST, "item-required", "retract names an item")
            notify = verb.attrs.get("notify") in ("1", "true")
            for item_el in items:
                svc.retract(name, sender, item_el.attrs.get("id", ""), notify)
            return None
        if type_ == "set" and tag == "subscribe":
            jid = _jid(verb.attrs.get("jid"))
            relation = await self._relation_for(svc, name, jid)
            sub = svc.subscribe(name, sender, jid, relation)
            options = pubsub.find("options", PUBSUB)
            form = options.find("x", DATA) if options is not None else None
            if form is not None:  # §6.3.7: subscribe and configure at once
                svc.set_options(name, sender, jid, sub.subid, form)
            result = Element("pubsub", PUBSUB)
            result.add(
                "subscription",
                PUBSUB,
                {"node": name or "", "jid": str(sub.jid), "subid": sub.subid,
                 "subscription": sub.state},
            )  # fmt: skip
            return result
        if type_ == "set" and tag == "unsubscribe":
            svc.unsubscribe(name, sender, _jid(verb.attrs.get("jid")), verb.attrs.get("subid"))
            return None
        if type_ == "get" and tag == "items":
            return await self._items(svc, sender, pubsub, verb)
        if type_ == "get" and tag == "subscriptions":
            result = Element("pubsub", PUBSUB)
            subs = result.add("subscriptions", PUBSUB)
            for node_name, sub in svc.subscriptions_of(sender, name):
                subs.add(
                    "subscription",
                    PUBSUB,
                    {"node": node_name, "jid": str(sub.jid), "subid": sub.subid,
                     "subscription": sub.state},
                )  # fmt: skip
            return result
        if type_ == "get" and tag == "affiliations":
            result = Element("pubsub", PUBSUB)
            affs = result.add("affiliations", PUBSUB)
            for node_name, affiliation in svc.affiliations_of(sender, name):
                affs.add("affiliation", PUBSUB, {"node": node_name, "affiliation": affiliation})
            return result
        if tag == "options":
            jid = _jid(verb.attrs.get("jid"))
            subid = verb.attrs.get("subid")
            if type_ == "set":
                form = verb.find("x", DATA)
                if form is None:
                    raise error(C.BAD_REQUEST, "invalid-options", "options carry a data form")
                svc.set_options(name, sender, jid, subid, form)
                return None
            result = Element("pubsub", PUBSUB)
            attrs = {"node": name or "", "jid": str(jid)}
            if subid:
                attrs["subid"] = subid
            result.add("options", PUBSUB, attrs).append(svc.options(name, sender, jid, subid))
            return result
        if tag == "default" and type_ == "get":  # §6.4
            if name:
                svc.node(name)
            result = Element("pubsub", PUBSUB)
            default = result.add("default", PUBSUB, {"node": name} if name else {})
            default.append(options_form())
            return result
        raise StanzaError(C.BAD_REQUEST, f"no pubsub {type_} for <{tag}/>")

    def _may_create(self, svc: PubsubService, sender: JID) -> bool:
        if svc.owner is not None:
            return sender.bare == svc.owner
        if self.ctx.is_admin(sender):
            return True  # the service's administrators, whatever the restriction
        if self.options.create_nodes == "admins":
            return False
        return sender.domain == self.ctx.domain and sender.local is not None

    async def _items(
        self, svc: PubsubService, sender: JID, pubsub: Element, verb: Element
    ) -> Element:
        """§6.5: all items, some by id, the newest max_items, or a page (XEP-0059)."""
        name = verb.attrs.get("node")
        ids = [i.attrs.get("id", "") for i in verb.find_all("item", PUBSUB)]
        max_items = None
        if "max_items" in verb.attrs:
            text = verb.attrs["max_items"]
            if not text.isdigit() or len(text) > 9:
                raise StanzaError(C.BAD_REQUEST, "max_items is a number")
            max_items = int(text)
        page = _page(pubsub.find("set", RSM))
        relation = await self._relation_for(svc, name, sender)
        node, items, info = svc.items(
            name, sender, relation, ids=ids or None, max_items=max_items, page=page
        )
        result = Element("pubsub", PUBSUB)
        container = result.add("items", PUBSUB, {"node": node.name})
        for item in items:
            el = container.add("item", PUBSUB, {"id": item.id})
            if svc.owner is None:
                el.attrs["publisher"] = str(item.publisher)
            if item.payload is not None:
                el.append(item.payload)
        if info is not None:
            result.append(_page_result(info))
        return result

    async def _owner(self, svc: PubsubService, iq: Stanza, pubsub: Element) -> Element | None:
        assert iq.from_ is not None
        sender = iq.from_
        verb = _verb(pubsub)
        name = verb.attrs.get("node")
        tag, type_ = verb.tag, iq.type
        if tag == "configure" and type_ == "get":
            result = Element("pubsub", OWNER)
            result.add("configure", OWNER, {"node": name or ""}).append(
                svc.configuration(name, sender)
            )
            return result
        if tag == "configure" and type_ == "set":
            form = verb.find("x", DATA)
            if form is None:
                raise StanzaError(C.BAD_REQUEST, "configure carries a data form")
            svc.configure(name, sender, form)
            return None
        if tag == "default" and type_ == "get":
            result = Element("pubsub", OWNER)
            result.add("default", OWNER).append(config_form(svc.policy.default_config, ""))
            return result
        if tag == "delete" and type_ == "set":
            redirect = verb.find("redirect", OWNER)
            svc.delete(name, sender, redirect.attrs.get("uri") if redirect is not None else None)
            return None
        if tag == "purge" and type_ == "set":
            svc.purge(name, sender)
            return None
        if tag == "subscriptions" and type_ == "get":
            result = Element("pubsub", OWNER)
            subs = result.add("subscriptions", OWNER, {"node": name or ""})
            for sub in svc.node_subscriptions(name, sender):
                subs.add(
                    "subscription",
                    OWNER,
                    {"jid": str(sub.jid), "subscription": sub.state, "subid": sub.subid},
                )
            return result
        if tag == "subscriptions" and type_ == "set":
            changes = [
                (_jid(s.attrs.get("jid")), s.attrs.get("subscription", ""))
                for s in verb.find_all("subscription", OWNER)
            ]
            svc.set_subscriptions(name, sender, changes)
            return None
        if tag == "affiliations" and type_ == "get":
            result = Element("pubsub", OWNER)
            affs = result.add("affiliations", OWNER, {"node": name or ""})
            for jid, affiliation in svc.node_affiliations(name, sender):
                affs.add("affiliation", OWNER, {"jid": str(jid), "affiliation": affiliation})
            return result
        if tag == "affiliations" and type_ == "set":
            changes = [
                (_jid(a.attrs.get("jid")), a.attrs.get("affiliation", ""))
                for a in verb.find_all("affiliation", OWNER)
            ]
            svc.set_affiliations(name, sender, changes)
            return None
        raise StanzaError(C.BAD_REQUEST, f"no pubsub#owner {type_} for <{tag}/>")

    async def on_authorization(self, stanza: Stanza) -> bool:
        """§8.6: an owner's answer to a subscription request, a submitted form in a message
        to the service (or, for PEP, to the owner's own bare JID)."""
        form = stanza.element.find("x", DATA)
        sender = stanza.from_
        if form is None or sender is None or stanza.type == "error":
            return False
        if config_form_type(form) != SUBSCRIBE_AUTHORIZATION:
            return False
        target = stanza.to.bare if stanza.to is not None else sender.bare
        if target.local is None:
            target = JID.parse(self.domain)
        svc = await self._service(target)
        try:
            svc.authorize(sender, form)
        except StanzaError as exc:
            svc.drain()  # nothing changed
            self.ctx.router.bounce(stanza, exc)
            return True
        await self._commit(svc, svc.drain(), None, None)
        return True

    # --- PEP seen from other modules (registry services) ---------------------------------
    async def account_items(self, account: JID, asker: JID) -> list[Element]:
        """XEP-0163 §6.2 (and XEP-0060 §5.2): the account's nodes ``asker`` may read."""
        if not self.options.pep or account.domain != self.ctx.domain:
            return []
        svc = await self._service(account)
        relation = NO_RELATION
        if asker.bare != account and svc.nodes:
            relation = await self._relation(account, asker)
        return [
            Element("item", ns.DISCO_ITEMS, {"jid": str(account), "node": node.name})
            for node in sorted(svc.nodes.values(), key=lambda n: n.name)
            if svc.may_access(node, asker, relation)
        ]

    async def on_account_deleted(self, account: JID) -> None:
        """The account is gone, and its PEP nodes and items went with its row: drop what is
        held in memory."""
        self.services.pop(account, None)
        for full in list(self.seen.pop(account, {})):
            self._forget_if_unwatched(full)

    async def _publish_as_owner(self, account: JID, steps: Callable[[PubsubService], None]) -> None:
        """Changes the server makes on an account's PEP for it (conversions): notified to
        the account's followers like the owner's own publishes, stored first."""
        svc = await self._service(account)
        if svc.owner is None or account not in self.services:
            return  # no such account
        svc.audience = await self._audience(svc)
        try:
            steps(svc)
        except StanzaError as exc:
            log.info("PEP of %s not converted: %s", account, exc.text or exc.condition)
        finally:
            svc.audience = None
            out = svc.drain()
        await self._commit(svc, out, None, None)

    async def avatar_changed(self, account: JID, avatar: Avatar | None) -> None:
        """XEP-0398 §3.2: a vCard PHOTO was set; publish data, then metadata."""

        def publish(svc: PubsubService) -> None:
            if avatar is None and avatars.AVATAR_METADATA not in svc.nodes:
                return  # no avatar before either: nothing to disable
            if avatar is not None:
                svc.publish(avatars.AVATAR_DATA, account, avatars.data_item(avatar.data),
                            may_create=True)  # fmt: skip
            mime, image = (avatar.mime, avatar.data) if avatar is not None else ("", None)
            svc.publish(avatars.AVATAR_METADATA, account, avatars.metadata_item(mime, image),
                        may_create=True)  # fmt: skip

        await self._publish_as_owner(account, publish)

    async def _avatar_to_vcard(self, svc: PubsubService) -> None:
        """XEP-0398 §3.1: the owner published avatar metadata; the vCard gets the image."""
        sink = self.ctx.registry.vcard_avatar
        owner = svc.owner
        node = svc.nodes.get(avatars.AVATAR_METADATA)
        last = node.last_item() if node is not None else None
        if sink is None or owner is None or last is None or last.payload is None:
            return
        try:
            info = avatars.chosen_info(last.payload)
            if info is None:
                await sink.avatar_changed(owner, None)
                return
            data_node = svc.nodes.get(avatars.AVATAR_DATA)
            item = data_node.items.get(info.attrs["id"]) if data_node is not None else None
            mime, image = avatars.image_of(info, item.payload if item is not None else None)
        except avatars.NoAvatar as exc:
            log.info("avatar of %s not copied to the vCard: %s", owner, exc)
            return
        await sink.avatar_changed(owner, Avatar(mime, image))

    async def private_changed(self, account: JID, element: Element) -> None:
        """XEP-0402 §5.3.2: legacy bookmarks were stored; update the PEP items that differ
        (unchanged ones are not notified) and retract those no longer listed."""
        if element.tag != "storage" or element.ns != bookmarks.LEGACY:
            return
        wanted = bookmarks.from_storage(element)

        def update(svc: PubsubService) -> None:
            node = svc.nodes.get(bookmarks.BOOKMARKS)
            if node is None:
                if not wanted:
                    return
                node = svc.create(bookmarks.BOOKMARKS, account)
                node.config = bookmarks.NODE_CONFIG
            for room, conference in wanted.items():
                old = node.items.get(room)
                if old is None or old.payload != conference:
                    item = Element("item", PUBSUB, {"id": room})
                    item.append(conference)
                    svc.publish(bookmarks.BOOKMARKS, account, item)
            for room in [r for r in node.items if r not in wanted]:
                svc.retract(bookmarks.BOOKMARKS, account, room, notify=True)

        await self._publish_as_owner(account, update)

    async def _bookmarks_to_private(self, svc: PubsubService) -> None:
        """XEP-0402 §5.3.1: the owner changed the PEP bookmarks; the legacy storage gets
        every item, cast into storage:bookmarks."""
        private = self.ctx.registry.private_xml
        owner = svc.owner
        if private is None or owner is None:
            return
        node = svc.nodes.get(bookmarks.BOOKMARKS)
        items = [(i.id, i.payload) for i in node.items.values()] if node is not None else []
        keep = await private.get_private(owner, bookmarks.LEGACY, "storage")
        await private.put_private(owner, bookmarks.to_storage(items, keep))

    # --- disco of the service (XEP-0060 §5) ----------------------------------------------
    async def service_info(self, iq: Stanza) -> Element | None:
        assert iq.from_ is not None
        payload = iq.payload
        name = payload.attrs.get("node") if payload is not None else None
        query = Element("query", ns.DISCO_INFO)
        if name:
            svc = await self._service(JID.parse(self.domain))
            node = svc.nodes.get(name)
            relation = await self._relation_for(svc, name, iq.from_)
            if node is None or not svc.may_access(node, iq.from_, relation):
                raise StanzaError(C.ITEM_NOT_FOUND, f"no node {name!r}")
            query.attrs["node"] = name
            query.add("identity", ns.DISCO_INFO, {"category": "pubsub", "type": "leaf"})
            query.add("feature", ns.DISCO_INFO, {"var": PUBSUB})
            return query
        query.add("identity", ns.DISCO_INFO, {"category": "pubsub", "type": "service"})
        for feature in (ns.DISCO_INFO, ns.DISCO_ITEMS, PUBSUB, *FEATURES):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        return query

    async def service_items(self, iq: Stanza) -> Element | None:
        """§5.2: the nodes the asker may see; §5.5 the item ids of one node."""
        assert iq.from_ is not None
        svc = await self._service(JID.parse(self.domain))
        payload = iq.payload
        name = payload.attrs.get("node") if payload is not None else None
        query = Element("query", ns.DISCO_ITEMS)
        if name:
            relation = await self._relation_for(svc, name, iq.from_)
            node, items, _ = svc.items(name, iq.from_, relation)
            query.attrs["node"] = name
            for item in items:
                query.add("item", ns.DISCO_ITEMS, {"jid": self.domain, "name": item.id})
            return query
        for node in sorted(svc.nodes.values(), key=lambda n: n.name):
            relation = await self._relation_for(svc, node.name, iq.from_)
            if svc.may_access(node, iq.from_, relation):
                attrs = {"jid": self.domain, "node": node.name}
                if node.config.title:
                    attrs["name"] = node.config.title
                query.add("item", ns.DISCO_ITEMS, attrs)
        return query

    # --- PEP: who hears what (XEP-0163 §4, XEP-0115) ---------------------------------------
    async def _audience(self, svc: PubsubService) -> Callable[[Node], Iterable[JID]]:
        """The resources that asked for a node's notifications (+notify), if allowed."""
        assert svc.owner is not None
        watching = dict(self.seen.get(svc.owner, {}))
        relations = {
            full: await self._relation(svc.owner, full)
            for full in watching
            if full.bare != svc.owner
        }

        def audience(node: Node) -> list[JID]:
            wanted = f"{node.name}+notify"
            return [
                full
                for full in watching
                if wanted in self.features.get(full, frozenset())
                and svc.may_access(node, full, relations.get(full, NO_RELATION))
            ]

        return audience

    async def on_own_presence(self, stanza: Stanza) -> bool:
        """The owner's own resources: their caps say which of its nodes they follow."""
        sender = stanza.from_
        if stanza.to is not None or sender is None or sender.local is None:
            return False
        await self._saw(sender.bare, sender, stanza)
        return False

    async def on_presence(self, stanza: Stanza) -> bool:
        """Presence from a contact to a local account (XEP-0163 §4.3.2)."""
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None or sender.resource is None:
            return False
        await self._saw(to.bare, sender, stanza)
        return False

    async def _saw(self, owner: JID, full: JID, stanza: Stanza) -> None:
        if full.resource is None:
            return
        watching = self.seen.setdefault(owner, {})
        if stanza.type == "unavailable":
            watching.pop(full, None)
            if not watching:
                self.seen.pop(owner, None)
            self._forget_if_unwatched(full)
            return
        if stanza.type != "available":
            return
        caps = Caps.from_presence(stanza.element)
        is_new = full not in watching or watching[full] != caps
        watching[full] = caps
        if not is_new or caps is None:
            return
        known = self.caps.get(caps) if caps.hash else None
        if known is not None:
            self.features[full] = known
            await self._came_online(owner, full)
        elif not any(j == full for j, _ in self.asked.values()):
            await self._ask_caps(full, caps)
        elif full in self.features:
            await self._came_online(owner, full)

    def _forget_if_unwatched(self, full: JID) -> None:
        if not any(full in watching for watching in self.seen.values()):
            self.features.pop(full, None)

    async def on_session_ended(self, stanza: Stanza) -> bool:
        full = stanza.from_
        if full is not None:
            watching = self.seen.get(full.bare)
            if watching is not None:
                watching.pop(full, None)
            self._forget_if_unwatched(full)
        return False

    async def _ask_caps(self, full: JID, caps: Caps) -> None:
        """XEP-0115 §6.2: disco#info of node#ver, to the resource that announced it."""
        if len(self.asked) > 10000:
            return  # a flood of distinct caps: no more questions until answers come
        query_id = f"caps-{uuid.uuid4().hex}"
        self.asked[query_id] = (full, caps)
        iq = Element(
            "iq", ns.CLIENT, {"type": "get", "id": query_id, "from": self.ctx.domain,
                              "to": str(full)}
        )  # fmt: skip
        iq.add("query", ns.DISCO_INFO, {"node": f"{caps.node}#{caps.ver}"})
        await self.ctx.send(iq)

    async def on_caps_answer(self, stanza: Stanza) -> bool:
        query_id = stanza.id
        if stanza.type not in ("result", "error") or query_id not in self.asked:
            return False
        full, caps = self.asked.pop(query_id)
        if stanza.from_ != full:
            return True
        query = stanza.payload
        if stanza.type == "error" or query is None or query.ns != ns.DISCO_INFO:
            return True
        features = self.caps.learn(caps, query)
        if features is None:
            return True
        self.features[full] = features
        for owner, watching in list(self.seen.items()):
            if watching.get(full) == caps:
                await self._came_online(owner, full)
        return True

    async def _came_online(self, owner: JID, full: JID) -> None:
        """XEP-0163 §4.3.2: the last item of each node the resource follows."""
        if owner.domain != self.ctx.domain:
            return
        svc = await self._service(owner)
        if not svc.nodes:
            return
        features = self.features.get(full, frozenset())
        relation = NO_RELATION if full.bare == owner else await self._relation(owner, full)
        for node in list(svc.nodes.values()):
            if (
                node.config.send_last_published_item == "on_sub_and_presence"
                and f"{node.name}+notify" in features
                and svc.may_access(node, full, relation)
            ):
                svc.send_last(node, [full])
        await self._commit(svc, svc.drain(), None, None)


def _verb(pubsub: Element) -> Element:
    """The action element of a <pubsub/> (options, configure and RSM come with it)."""
    for child in pubsub.elements():
        if child.tag not in ("publish-options", "configure", "options", "set") or (
            child.tag == "configure" and child.ns == OWNER
        ):
            return child
    for child in pubsub.elements():
        if child.tag == "options":
            return child
    raise StanzaError(C.BAD_REQUEST, "the <pubsub/> element is empty")


def _jid(text: str | None) -> JID:
    if not text:
        raise error(C.BAD_REQUEST, "jid-required", "a jid attribute is required")
    try:
        return JID.parse(text)
    except InvalidJID as exc:
        raise error(C.BAD_REQUEST, "invalid-jid", str(exc)) from exc


def _page(rsm: Element | None) -> Page | None:
    if rsm is None:
        return None

    def number(tag: str) -> int | None:
        text = rsm.child_text(tag, RSM)
        if text is None:
            return None
        if not text.isdigit() or len(text) > 9:
            raise StanzaError(C.BAD_REQUEST, f"RSM <{tag}/> is a number")
        return int(text)

    return Page(number("max"), rsm.child_text("after", RSM), rsm.child_text("before", RSM),
                number("index"))  # fmt: skip


def _page_result(info: PageInfo) -> Element:
    rsm = Element("set", RSM)
    if info.first is not None:
        rsm.add("first", RSM, {"index": str(info.first_index)}, info.first)
        rsm.add("last", RSM, text=info.last or "")
    rsm.add("count", RSM, text=str(info.count))
    return rsm


__all__ = ["EVENT", "PubsubModule"]
