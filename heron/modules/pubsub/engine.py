"""The publish-subscribe engine (XEP-0060), without I/O.

One ``PubsubService`` holds the nodes of one pubsub JID: ``pubsub.DOMAIN``, or an account's
bare JID for PEP (XEP-0163), where that account owns every node. Operations check
permissions and limits, change the nodes, and raise ``StanzaError`` with the pubsub#errors
condition when they must refuse. What they change and whom to tell is collected in an
``Outbox`` the caller drains after each operation: it writes the changes durably, then sends
the notifications (h11's "events out" habit; no storage or network here).

The caller computes how a requester stands towards the owner (``Relation``: presence
subscription, roster groups) for the presence and roster access models, because that needs
the roster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from heron import ns
from heron.jid import JID
from heron.modules.pubsub import collections as coll
from heron.modules.pubsub import config as cfg
from heron.modules.pubsub.errors import error, node_not_found, unsupported
from heron.modules.pubsub.model import (
    AFFILIATIONS,
    MAY_PUBLISH,
    MAY_READ,
    NO_RELATION,
    Item,
    Node,
    Notification,
    Outbox,
    Page,
    PageInfo,
    Policy,
    Relation,
    Subscription,
    add_items,
    authorization_form,
    new_id,
    options_form,
    page_window,
)
from heron.stanza import StanzaCondition, StanzaError
from heron.stanza.forms import form_type, submitted_values
from heron.xmlstream import serialize
from heron.xmlstream.element import Element

C = StanzaCondition


class PubsubService:
    """The nodes of one pubsub JID. ``owner`` set: a PEP service, that account owns all."""

    def __init__(
        self,
        jid: JID,
        policy: Policy,
        *,
        owner: JID | None = None,
        make_id: Callable[[], str] = new_id,
    ) -> None:
        self.jid = jid
        self.policy = policy
        self.owner = owner
        self.nodes: dict[str, Node] = {}
        self.outbox = Outbox()
        self._make_id = make_id
        # Set by the caller around an operation: who else hears of a node's events
        # (PEP's +notify resources, already found allowed).
        self.audience: Callable[[Node], Iterable[JID]] | None = None

    def drain(self) -> Outbox:
        out, self.outbox = self.outbox, Outbox()
        return out

    # --- who may do what (XEP-0060 §4.1) ----------------------------------------------
    def affiliation(self, node: Node, jid: JID) -> str:
        if self.owner is not None and jid.bare == self.owner:
            return "owner"
        return node.affiliations.get(jid.bare, "none")

    def node(self, name: str | None) -> Node:
        if not name:
            raise error(C.BAD_REQUEST, "nodeid-required", "a node is required")
        node = self.nodes.get(name)
        if node is None:
            raise node_not_found(name)
        return node

    def check_access(self, node: Node, jid: JID, relation: Relation) -> None:
        """May ``jid`` see the node's items and subscribe (§6.1.3, §6.5.9)?"""
        affiliation = self.affiliation(node, jid)
        if affiliation == "outcast":
            raise StanzaError(C.FORBIDDEN, "you are banned from this node")
        if affiliation in MAY_READ:
            return
        model = node.config.access_model
        if model == "open":
            return
        if model == "presence" and not relation.subscribed:
            raise error(C.NOT_AUTHORIZED, "presence-subscription-required")
        if model == "roster":
            allowed = set(node.config.roster_groups_allowed)
            if not relation.in_roster or not allowed & relation.groups:
                raise error(C.NOT_AUTHORIZED, "not-in-roster-group")
        if model == "whitelist":
            raise error(C.NOT_ALLOWED, "closed-node", "only those on the whitelist")
        if model == "authorize":
            sub = node.subscriptions.get(jid) or node.subscriptions.get(jid.bare)
            if sub is None:
                raise error(C.NOT_AUTHORIZED, "not-subscribed", "subscribe and be approved")
            if sub.state == "pending":
                raise error(C.NOT_AUTHORIZED, "pending-subscription", "not approved yet")

    def may_access(self, node: Node, jid: JID, relation: Relation) -> bool:
        try:
            self.check_access(node, jid, relation)
        except StanzaError:
            return False
        return True

    def _require_owner(self, node: Node, jid: JID) -> None:
        if self.affiliation(node, jid) != "owner":
            raise StanzaError(C.FORBIDDEN, "only the node's owners may do that")

    # --- node lifecycle (§8) -----------------------------------------------------------
    def create(self, name: str | None, creator: JID, config: Element | None = None) -> Node:
        """§8.1: a new leaf node owned by ``creator``; an instant node when ``name`` is
        empty; ``config`` is the submitted creation form, if any."""
        if self.owner is not None and creator.bare != self.owner:
            raise StanzaError(C.FORBIDDEN, "only the account creates nodes on its own PEP")
        name = name or self._make_id()
        if name in self.nodes:
            raise StanzaError(C.CONFLICT, f"node {name!r} exists")
        if len(name) > 1024:
            raise StanzaError(C.NOT_ACCEPTABLE, "node names are at most 1024 characters")
        if len(self.nodes) >= self.policy.max_nodes:
            raise StanzaError(C.RESOURCE_CONSTRAINT, f"at most {self.policy.max_nodes} nodes")
        node_config = self.policy.default_config
        if config is not None:
            node_config = cfg.apply_form(node_config, config, self.policy.max_items)
        parent = coll.check_placement(self.nodes, name, node_config.collection)
        if parent is not None:  # XEP-0248 §4.4: only the collection's owners add to it
            self._require_owner(parent, creator)
        node = Node(name, node_config)
        node.affiliations[creator.bare] = "owner"
        self.nodes[name] = node
        self.outbox.saved_nodes.add(name)
        if parent is not None:
            event = Element("event", ns.PUBSUB_EVENT)
            event.add("create", ns.PUBSUB_EVENT, {"node": name})
            self._notify_collections(node, event)
        return node

    def configuration(self, name: str | None, requester: JID) -> Element:
        node = self.node(name)
        self._require_owner(node, requester)
        return cfg.config_form(node.config, node.name)

    def configure(self, name: str | None, requester: JID, form: Element) -> None:
        """§8.2.4: owners submit the form; a ``cancel`` form changes nothing."""
        node = self.node(name)
        self._require_owner(node, requester)
        if form.attrs.get("type") == "cancel":
            return
        old = node.config
        new = cfg.apply_form(old, form, self.policy.max_items)
        if new.node_type != old.node_type:
            raise StanzaError(C.NOT_ACCEPTABLE, "pubsub#node_type is set when the node is made")
        if new.collection != old.collection:
            parent = coll.check_placement(self.nodes, node.name, new.collection)
            if parent is not None:
                self._require_owner(parent, requester)
        node.config = new
        self._trim(node)
        if node.config.access_model == "whitelist" and old.access_model != "whitelist":
            for jid in list(node.subscriptions):
                if self.affiliation(node, jid) not in MAY_READ:
                    del node.subscriptions[jid]
        if not node.config.persist_items and old.persist_items:
            self.outbox.purged_nodes.add(node.name)
        self.outbox.saved_nodes.add(node.name)
        if node.config.notify_config:
            event = Element("event", ns.PUBSUB_EVENT)
            configuration = event.add("configuration", ns.PUBSUB_EVENT, {"node": node.name})
            if node.config.deliver_payloads:
                configuration.append(cfg.config_form(node.config, node.name))
            self._notify(node, event)

    def delete(self, name: str | None, requester: JID, redirect: str | None = None) -> None:
        """§8.4: subscribers are told, then the node and its items are gone."""
        node = self.node(name)
        self._require_owner(node, requester)
        event = Element("event", ns.PUBSUB_EVENT)
        deleted = event.add("delete", ns.PUBSUB_EVENT, {"node": node.name})
        if redirect:
            deleted.add("redirect", ns.PUBSUB_EVENT, {"uri": redirect})
        self._notify(node, event)
        del self.nodes[node.name]
        self.outbox.deleted_nodes.add(node.name)
        for child in self.nodes.values():  # its nodes stay, outside any collection
            if child.config.collection == node.name:
                child.config = cfg.with_options(child.config, {"collection": ""})
                self.outbox.saved_nodes.add(child.name)

    def purge(self, name: str | None, requester: JID) -> None:
        """§8.5: every item removed; subscribers told."""
        node = self.node(name)
        self._require_owner(node, requester)
        if not node.config.persist_items:
            raise unsupported("persistent-items", "this node keeps no items")
        node.items.clear()
        self.outbox.purged_nodes.add(node.name)
        event = Element("event", ns.PUBSUB_EVENT)
        event.add("purge", ns.PUBSUB_EVENT, {"node": node.name})
        self._notify(node, event)

    # --- publishing (§7) ---------------------------------------------------------------
    def publish(
        self,
        name: str | None,
        publisher: JID,
        item: Element | None,
        options: Element | None = None,
        *,
        may_create: bool = False,
    ) -> Item:
        """§7.1: publish ``item`` (an ``<item/>``, or None), with publish-options as
        preconditions (§7.1.5). A missing node is created when ``may_create`` (PEP, §7.1.5
        and XEP-0163 §3), configured as the options ask."""
        if not name:
            raise error(C.BAD_REQUEST, "nodeid-required", "publish needs a node")
        wanted = cfg.preconditions(options, self.policy.max_items) if options is not None else {}
        node = self.nodes.get(name)
        if node is None:
            if not may_create:
                raise node_not_found(name)
            node = self.create(name, publisher)
            node.config = cfg.with_options(node.config, wanted)
        else:
            cfg.check_preconditions(node.config, wanted)
        coll.refuse_items(node)
        affiliation = self.affiliation(node, publisher)
        model = node.config.publish_model
        allowed = (
            affiliation in MAY_PUBLISH
            or (model == "open" and affiliation != "outcast")
            or (model == "subscribers" and self._subscribed(node, publisher))
        )
        if not allowed:
            raise StanzaError(C.FORBIDDEN, "you may not publish to this node")
        payload = self._payload(node, item)
        item_id = (item.attrs.get("id") if item is not None else None) or self._make_id()
        if len(item_id) > 1024:
            raise StanzaError(C.NOT_ACCEPTABLE, "item ids are at most 1024 characters")
        published = Item(item_id, payload, publisher.bare)
        node.items.pop(item_id, None)  # the same id replaces, and becomes the newest
        node.items[item_id] = published
        if node.config.persist_items:
            self.outbox.saved_items.append((node.name, published))
        self._trim(node)
        if node.config.deliver_notifications:
            self._notify(node, self._items_event(node, [published]))
        return published

    def _payload(self, node: Node, item: Element | None) -> Element | None:
        needs = node.config.persist_items or node.config.deliver_payloads
        if item is None:
            if needs:
                raise error(C.BAD_REQUEST, "item-required", "publish an <item/>")
            return None
        payloads = list(item.elements())
        if len(payloads) > 1:
            raise error(C.BAD_REQUEST, "invalid-payload", "an item carries one payload")
        if not payloads:
            if needs:
                raise error(C.BAD_REQUEST, "payload-required", "the item has no payload")
            return None
        if not needs:
            raise error(C.BAD_REQUEST, "item-forbidden", "this node takes no payloads")
        size = len(serialize(payloads[0]).encode())
        if size > self.policy.max_payload_bytes:
            raise error(
                C.NOT_ACCEPTABLE,
                "payload-too-big",
                f"the payload is {size} bytes; at most {self.policy.max_payload_bytes}",
            )
        return payloads[0]

    def _trim(self, node: Node) -> None:
        """Oldest items go when the node holds more than it may (§7.1.2)."""
        limit = node.config.max_items or self.policy.max_items
        if not node.config.persist_items:
            limit = 1  # a transient node keeps only its last item, in memory
        while len(node.items) > limit:
            oldest = next(iter(node.items))
            del node.items[oldest]
            if node.config.persist_items:
                self.outbox.deleted_items.append((node.name, oldest))

    def retract(self, name: str | None, requester: JID, item_id: str, notify: bool) -> None:
        """§7.2: publishers remove any item, others only their own."""
        node = self.node(name)
        if not item_id:
            raise error(C.BAD_REQUEST, "item-required", "retract needs an item id")
        item = node.items.get(item_id)
        if item is None:
            raise StanzaError(C.ITEM_NOT_FOUND, f"no item {item_id!r}")
        affiliation = self.affiliation(node, requester)
        if affiliation not in ("owner", "publisher") and item.publisher != requester.bare:
            raise StanzaError(C.FORBIDDEN, "you may retract only your own items")
        if affiliation == "outcast":
            raise StanzaError(C.FORBIDDEN, "you are banned from this node")
        del node.items[item_id]
        self.outbox.deleted_items.append((node.name, item_id))
        if notify or node.config.notify_retract:
            event = Element("event", ns.PUBSUB_EVENT)
            event.add("items", ns.PUBSUB_EVENT, {"node": node.name}).add(
                "retract", ns.PUBSUB_EVENT, {"id": item_id}
            )
            self._notify(node, event)

    # --- subscriptions (§6) ------------------------------------------------------------
    def _subscribed(self, node: Node, jid: JID) -> bool:
        sub = node.subscriptions.get(jid) or node.subscriptions.get(jid.bare)
        return sub is not None and sub.state == "subscribed"

    def subscribe(
        self, name: str | None, requester: JID, jid: JID, relation: Relation
    ) -> Subscription:
        """§6.1: ``jid`` subscribes (the requester's bare or full JID, §6.1.3.1)."""
        node = self.node(name)
        if jid.bare != requester.bare:
            raise error(C.BAD_REQUEST, "invalid-jid", "subscribe yourself only")
        existing = node.subscriptions.get(jid)
        if existing is not None:
            return existing
        needs_approval = (
            node.config.access_model == "authorize" and self.affiliation(node, jid) not in MAY_READ
        )
        if needs_approval:
            if self.affiliation(node, jid) == "outcast":
                raise StanzaError(C.FORBIDDEN, "you are banned from this node")
        else:
            self.check_access(node, jid, relation)
        sub = Subscription(jid, self._make_id())
        node.subscriptions[jid] = sub
        self.outbox.saved_nodes.add(node.name)
        if needs_approval:
            # §6.1.2 and §8.6: pending until an owner approves the request form.
            sub.state = "pending"
            form = authorization_form(node.name, sub)
            for owner in self._owners(node):
                self.outbox.notifications.append(Notification(owner, form, "normal"))
            return sub
        if node.config.notify_sub:
            self._tell_owners(node, sub)
        if node.config.send_last_published_item != "never":
            self.send_last(node, [jid])
        return sub

    def unsubscribe(
        self, name: str | None, requester: JID, jid: JID, subid: str | None = None
    ) -> None:
        """§6.2: one's own subscription; owners may end anyone's."""
        node, sub = self._own_subscription(name, requester, jid, subid)
        del node.subscriptions[jid]
        self.outbox.saved_nodes.add(node.name)
        if node.config.notify_sub:
            self._tell_owners(node, Subscription(jid, sub.subid, "none"))

    def _tell_owners(self, node: Node, sub: Subscription) -> None:
        event = Element("event", ns.PUBSUB_EVENT)
        event.add(
            "subscription",
            ns.PUBSUB_EVENT,
            {"node": node.name, "jid": str(sub.jid), "subscription": sub.state},
        )
        for owner in self._owners(node):
            self.outbox.notifications.append(Notification(owner, event))

    def _owners(self, node: Node) -> list[JID]:
        if self.owner is not None:
            return [self.owner]
        return sorted((j for j, a in node.affiliations.items() if a == "owner"), key=str)

    def authorize(self, approver: JID, form: Element) -> None:
        """§8.6: an owner answers a subscription request with the submitted form."""
        values = submitted_values(form)
        if form_type(form) != ns.PUBSUB_SUBSCRIBE_AUTHORIZATION:
            raise StanzaError(C.BAD_REQUEST, "not a subscribe_authorization form")
        name = (values.get("pubsub#node") or [""])[0]
        node = self.node(name)
        self._require_owner(node, approver)
        try:
            jid = JID.parse((values.get("pubsub#subscriber_jid") or [""])[0])
        except ValueError as exc:
            raise error(C.BAD_REQUEST, "invalid-jid", "pubsub#subscriber_jid") from exc
        sub = node.subscriptions.get(jid)
        subid = (values.get("pubsub#subid") or [""])[0]
        if sub is None or sub.state != "pending" or (subid and subid != sub.subid):
            raise StanzaError(C.ITEM_NOT_FOUND, "no such pending subscription")
        allow = cfg.parse_bool((values.get("pubsub#allow") or ["false"])[0], "pubsub#allow")
        if allow:
            sub.state = "subscribed"
        else:
            del node.subscriptions[jid]
        self.outbox.saved_nodes.add(node.name)
        event = Element("event", ns.PUBSUB_EVENT)
        event.add(
            "subscription",
            ns.PUBSUB_EVENT,
            {"node": node.name, "jid": str(jid), "subscription": sub.state if allow else "none"},
        )
        self.outbox.notifications.append(Notification(jid, event))
        if allow and node.config.send_last_published_item != "never":
            self.send_last(node, [jid])

    # --- subscription options (§6.3, §6.4) -----------------------------------------------
    def _own_subscription(
        self, name: str | None, requester: JID, jid: JID, subid: str | None
    ) -> tuple[Node, Subscription]:
        node = self.node(name)
        if jid.bare != requester.bare and self.affiliation(node, requester) != "owner":
            raise StanzaError(C.FORBIDDEN, "not your subscription")
        sub = node.subscriptions.get(jid)
        if sub is None:
            raise error(C.UNEXPECTED_REQUEST, "not-subscribed", "there is no such subscription")
        if subid and subid != sub.subid:
            raise error(C.NOT_ACCEPTABLE, "invalid-subid", "no subscription with that subid")
        return node, sub

    def options(
        self, name: str | None, requester: JID, jid: JID, subid: str | None = None
    ) -> Element:
        """§6.3.2: the options form of a subscription."""
        node, sub = self._own_subscription(name, requester, jid, subid)
        form = options_form(sub.deliver)
        if node.config.node_type == "collection":
            depth = "all" if sub.depth is None else str(sub.depth)
            for var, value in zip(coll.OPTIONS, (sub.type, depth), strict=True):
                form.add("field", ns.DATA_FORMS, {"var": var}).add(
                    "value", ns.DATA_FORMS, text=value
                )
        return form

    def set_options(
        self, name: str | None, requester: JID, jid: JID, subid: str | None, form: Element
    ) -> None:
        """§6.3.5: a submitted options form; unknown fields are bad-request invalid-options."""
        node, sub = self._own_subscription(name, requester, jid, subid)
        if form.attrs.get("type") == "cancel":
            return
        try:
            values = submitted_values(form)
        except StanzaError as exc:
            raise error(C.BAD_REQUEST, "invalid-options", exc.text) from exc
        for var, given in values.items():
            if var in coll.OPTIONS and node.config.node_type == "collection":
                attr, value = coll.parse_option(var, (given or [""])[0])
                if attr == "type":
                    sub.type = str(value)
                else:
                    sub.depth = value if isinstance(value, int) else None
                continue
            if var != "pubsub#deliver":
                raise error(C.BAD_REQUEST, "invalid-options", f"{var} is not an option here")
            try:
                sub.deliver = cfg.parse_bool((given or [""])[0], var)
            except StanzaError as exc:
                raise error(C.BAD_REQUEST, "invalid-options", exc.text) from exc
        self.outbox.saved_nodes.add(node.name)

    def subscriptions_of(self, jid: JID, name: str | None = None) -> list[tuple[str, Subscription]]:
        """§5.6: an entity's own subscriptions, by node."""
        return [
            (node.name, sub)
            for node in self.nodes.values()
            if not name or node.name == name
            for sub in node.subscriptions.values()
            if sub.jid.bare == jid.bare
        ]

    def affiliations_of(self, jid: JID, name: str | None = None) -> list[tuple[str, str]]:
        """§5.7: an entity's own affiliations, by node."""
        found = []
        for node in self.nodes.values():
            affiliation = self.affiliation(node, jid)
            if affiliation != "none" and (not name or node.name == name):
                found.append((node.name, affiliation))
        return found

    # --- owner management (§8.8, §8.9) ---------------------------------------------------
    def node_subscriptions(self, name: str | None, requester: JID) -> list[Subscription]:
        node = self.node(name)
        self._require_owner(node, requester)
        return list(node.subscriptions.values())

    def set_subscriptions(
        self, name: str | None, requester: JID, changes: list[tuple[JID, str]]
    ) -> None:
        """§8.8.2: owners subscribe or unsubscribe others (states subscribed or none)."""
        node = self.node(name)
        self._require_owner(node, requester)
        for _jid, state in changes:
            if state not in ("subscribed", "none"):
                raise StanzaError(C.NOT_ACCEPTABLE, f"subscription {state!r} is not supported")
        for jid, state in changes:
            if state == "none":
                if node.subscriptions.pop(jid, None) is None:
                    continue
                sub = Subscription(jid, "", "none")
            else:
                sub = node.subscriptions.get(jid) or Subscription(jid, self._make_id())
                node.subscriptions[jid] = sub
            event = Element("event", ns.PUBSUB_EVENT)
            event.add(
                "subscription",
                ns.PUBSUB_EVENT,
                {"node": node.name, "jid": str(jid), "subscription": state},
            )
            self.outbox.notifications.append(Notification(jid, event))
        self.outbox.saved_nodes.add(node.name)

    def node_affiliations(self, name: str | None, requester: JID) -> list[tuple[JID, str]]:
        node = self.node(name)
        self._require_owner(node, requester)
        found = dict(node.affiliations)
        if self.owner is not None:
            found[self.owner] = "owner"
        return sorted(found.items(), key=lambda kv: str(kv[0]))

    def set_affiliations(
        self, name: str | None, requester: JID, changes: list[tuple[JID, str]]
    ) -> None:
        """§8.9.2: owners change affiliations; a node keeps at least one owner, and an
        outcast loses its subscriptions."""
        node = self.node(name)
        self._require_owner(node, requester)
        updated = dict(node.affiliations)
        for jid, affiliation in changes:
            if affiliation not in AFFILIATIONS:
                raise StanzaError(C.BAD_REQUEST, f"no affiliation {affiliation!r}")
            if self.owner is not None and jid.bare == self.owner:
                raise StanzaError(C.NOT_ACCEPTABLE, "the account always owns its PEP nodes")
            if affiliation == "none":
                updated.pop(jid.bare, None)
            else:
                updated[jid.bare] = affiliation
        if self.owner is None and "owner" not in updated.values():
            raise StanzaError(C.NOT_ACCEPTABLE, "a node keeps at least one owner")
        node.affiliations = updated
        for jid in list(node.subscriptions):
            if updated.get(jid.bare) == "outcast" or (
                node.config.access_model == "whitelist"
                and self.affiliation(node, jid) not in MAY_READ
            ):
                del node.subscriptions[jid]
        self.outbox.saved_nodes.add(node.name)

    # --- retrieval (§6.5) --------------------------------------------------------------
    def items(
        self,
        name: str | None,
        requester: JID,
        relation: Relation,
        *,
        ids: list[str] | None = None,
        max_items: int | None = None,
        page: Page | None = None,
    ) -> tuple[Node, list[Item], PageInfo | None]:
        """Items oldest first: those named by ``ids``, the newest ``max_items``, or one page
        (XEP-0059) of them."""
        node = self.node(name)
        self.check_access(node, requester, relation)
        if not node.config.persist_items:
            raise unsupported("persistent-items", "this node keeps no items")
        every = list(node.items.values())
        if ids:
            return node, [node.items[i] for i in ids if i in node.items], None
        if max_items is not None:
            every = every[-max_items:] if max_items > 0 else []
        if page is None:
            return node, every, None
        return node, *page_window(every, page)

    def send_last(self, node: Node, receivers: Iterable[JID]) -> None:
        """The node's last item to ``receivers`` (§6.1.7, XEP-0163 §4.3.2)."""
        last = node.last_item()
        if last is None:
            return
        event = self._items_event(node, [last])
        for jid in receivers:
            self.outbox.notifications.append(
                Notification(jid, event, node.config.notification_type)
            )

    # --- notifications ---------------------------------------------------------------
    def _items_event(self, node: Node, items: list[Item]) -> Element:
        event = Element("event", ns.PUBSUB_EVENT)
        add_items(event, ns.PUBSUB_EVENT, node, items, publisher=self.owner is None)
        return event

    def _notify(self, node: Node, event: Element) -> None:
        """Every subscriber, and the audience (unless subscribed already), gets ``event``."""
        told: set[JID] = set()
        for sub in node.subscriptions.values():
            if (
                sub.state == "subscribed"
                and sub.deliver
                and self.affiliation(node, sub.jid) != "outcast"
            ):
                told.add(sub.jid)
        for jid in self.audience(node) if self.audience is not None else ():
            if jid not in told and jid.bare not in told:
                told.add(jid)
        for jid in sorted(told, key=str):
            self.outbox.notifications.append(
                Notification(jid, event, node.config.notification_type)
            )
        self._notify_collections(node, event, told)

    def _notify_collections(self, node: Node, event: Element, told: set[JID] | None = None) -> None:
        """XEP-0248 §5.3: subscribers of the collections above ``node`` that asked for this
        kind of event at this depth, each once, with the nearest collection named. They
        must also be allowed to read ``node`` itself (its affiliations and open access)."""
        told = set() if told is None else told
        for depth, collection in coll.ancestors(self.nodes, node):
            for sub in collection.subscriptions.values():
                jid = sub.jid
                if jid in told or sub.state != "subscribed" or not sub.deliver:
                    continue
                if not coll.wants(sub, event, depth):
                    continue
                if not self.may_access(node, jid, NO_RELATION):
                    continue
                told.add(jid)
                self.outbox.notifications.append(
                    Notification(jid, event, node.config.notification_type, collection.name)
                )

    def children(self, name: str, requester: JID) -> list[str]:
        """The nodes directly in collection ``name`` that ``requester`` may see."""
        return sorted(
            n.name
            for n in self.nodes.values()
            if n.config.collection == name and self.may_access(n, requester, NO_RELATION)
        )


__all__ = [
    "AFFILIATIONS",
    "MAY_PUBLISH",
    "MAY_READ",
    "NO_RELATION",
    "Item",
    "Node",
    "Notification",
    "Outbox",
    "Page",
    "PageInfo",
    "Policy",
    "PubsubService",
    "Relation",
    "Subscription",
    "authorization_form",
    "new_id",
    "options_form",
    "page_window",
]
