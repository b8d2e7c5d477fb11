"""RFC 6121 §2-§4: rosters (with XEP-0237 versions), subscriptions and presence broadcast.

Subscription transitions are the pure functions of ``subscription.py``; this module stores
them, pushes roster changes, and routes the presence that follows from them.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from heron import ns
from heron.config import build_options
from heron.core.module import Module, Xep, hook, iq_handler, stream_feature
from heron.core.registry import Contact, Target
from heron.jid import JID, InvalidJID
from heron.modules.roster.store import (
    LastActivityStore,
    RosterDelta,
    RosterFull,
    RosterItem,
    RosterStore,
    SqlLastActivityStore,
    SqlRosterStore,
)
from heron.modules.roster.subscription import HAS_FROM, HAS_TO, inbound, outbound
from heron.stanza import Stanza, StanzaCondition, StanzaError, iq_result
from heron.xmlstream.element import Element

SUBSCRIPTION_TYPES = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})


@dataclass(frozen=True, slots=True)
class RosterOptions:
    max_items: int = 1000
    max_name_length: int = 1024


@dataclass(slots=True)
class JointChange:
    """A subscription stanza between two accounts of this server, carried in its ``meta``:
    the handler that takes it first writes the sender's side (``step``), and the inbound
    handler of the contact writes both rosters in one transaction. If the stanza never
    reaches the contact's roster here (blocked, or handled on another node), the sender's
    handler writes its side alone once routing returns."""

    account: JID
    contact: JID
    step: Callable[[RosterItem], RosterItem | None]
    taken: bool = False
    sender_new: RosterItem | None = None


JOINT: Final = "roster_joint"


def item_element(item: RosterItem) -> Element:
    el = Element("item", ns.ROSTER, {"jid": item.contact, "subscription": item.subscription})
    if item.name:
        el.attrs["name"] = item.name
    if item.ask:
        el.attrs["ask"] = "subscribe"
    for group in item.groups:
        el.add("group", ns.ROSTER, text=group)
    return el


def removed_element(contact: str) -> Element:
    return Element("item", ns.ROSTER, {"jid": contact, "subscription": "remove"})


def push_element(to: JID, item: Element, version: int) -> Element:
    """A roster push (RFC 6121 §2.1.6) from the account to one of its resources."""
    push = Element(
        "iq",
        ns.CLIENT,
        {"type": "set", "id": f"push{version}", "to": str(to), "from": str(to.bare)},
    )
    push.add("query", ns.ROSTER, {"ver": str(version)}).append(item.copy())
    return push


class RosterModule(Module):
    name = "roster"
    description = "Contact lists with pushes to every interested resource and versioning"
    xeps = (
        Xep(237, "1.3", "complete", "pushes of only the changes since the client's version"),
        Xep(12, "2.0", "complete", "server uptime and contacts' last logout"),
    )
    disco_features = (ns.LAST,)
    stores = (SqlRosterStore, SqlLastActivityStore)

    async def start(self) -> None:
        self.options = build_options(
            RosterOptions, self.ctx.options, f'hosts."{self.ctx.domain}".modules.roster'
        )
        self.store: RosterStore = self.ctx.store(SqlRosterStore)
        # Pending logouts are written when the module unloads: a stop loses nothing.
        self.last: LastActivityStore = self.ctx.closing(self.ctx.store(SqlLastActivityStore))
        self.started = time.time()
        self.interested: set[JID] = set()  # full JIDs that requested the roster (§2.1.6)
        self.available: set[JID] = set()  # full JIDs that sent initial presence
        # §4.6: per full JID, who got directed available presence and must hear when it ends
        self.directed: dict[JID, set[JID]] = {}
        # One read-modify-write at a time per account; entries vanish with their last user.
        self._locks: weakref.WeakValueDictionary[JID, asyncio.Lock] = weakref.WeakValueDictionary()
        self.ctx.registry.contacts = self
        self.ctx.on_unload(self._withdraw_contacts)
        self.ctx.on_account_deleted(self.on_account_deleted)

    def _withdraw_contacts(self) -> None:
        if self.ctx.registry.contacts is self:
            self.ctx.registry.contacts = None

    async def on_account_deleted(self, account: JID) -> None:
        """The account's roster, versions and last activity go with it."""
        if account.local is not None:
            await self.last.forget(account.local, account.domain)
            await self.store.forget(account.local, account.domain)

    async def is_contact(self, account: JID, other: JID) -> bool:
        """ContactDirectory: in the roster, or a subscription in either direction."""
        item = await self._item(account, other.bare)
        return item.in_roster or item.subscription != "none"

    async def contact(self, account: JID, other: JID) -> Contact:
        """ContactDirectory: the subscription state and groups of ``other``."""
        item = await self._item(account, other.bare)
        return Contact(item.subscription, item.in_roster, tuple(item.groups))

    async def roster_items(self, account: JID) -> list[Element]:
        """ContactDirectory: the items a roster get would return (XEP-0133, export)."""
        _version, items = await self.store.get(account.local or "", account.domain)
        return [item_element(i) for i in items if i.in_roster]

    @stream_feature("postauth")
    def ver_feature(self) -> Element:
        return Element("ver", ns.ROSTER_VER_FEATURE)

    @staticmethod
    def _account(iq: Stanza) -> JID:
        if iq.from_ is None or iq.from_.local is None:
            raise StanzaError(StanzaCondition.FORBIDDEN)
        return iq.from_.bare

    @iq_handler("get", ns.ROSTER, Target.SELF)
    async def on_get(self, iq: Stanza) -> Element | None:
        account = self._account(iq)
        assert account.local is not None
        assert iq.from_ is not None
        self.interested.add(iq.from_)
        query = iq.payload
        client_ver = query.attrs.get("ver") if query is not None else None
        if client_ver is not None and client_ver.isdigit() and len(client_ver) < 19:
            delta = await self.store.changes(account.local, account.domain, int(client_ver))
            if delta is not None:
                self._send_delta(iq, delta)
                return None
        version, items = await self.store.get(account.local, account.domain)
        result = Element("query", ns.ROSTER, {"ver": str(version)})
        result.children.extend(item_element(i) for i in items if i.in_roster)
        return result

    def _send_delta(self, iq: Stanza, delta: RosterDelta) -> None:
        """RFC 6121 §2.6.3: an empty result, then a push for each change since the version."""
        assert iq.from_ is not None
        session = self.ctx.sessions.get(iq.from_)
        if session is None:
            return
        session.deliver(iq_result(iq))
        iq.meta["answered"] = True
        pushes = [(v, item_element(i)) for v, i in delta.changed if i.in_roster]
        pushes += [(v, removed_element(c)) for v, c in delta.removed]
        for version, item in sorted(pushes, key=lambda p: p[0]):
            session.deliver(push_element(iq.from_, item, version))

    @iq_handler("set", ns.ROSTER, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        account = self._account(iq)
        assert account.local is not None
        query = iq.payload
        items = query.find_all("item", ns.ROSTER) if query is not None else []
        if len(items) != 1 or query is None or len(list(query.elements())) != 1:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "exactly one item")  # §2.3.3
        el = items[0]
        try:
            contact = JID.parse(el.attrs.get("jid", ""))
        except InvalidJID as exc:
            raise StanzaError(StanzaCondition.JID_MALFORMED) from exc
        contact = contact.bare
        subscription = el.attrs.get("subscription")
        if subscription == "remove":
            async with self._lock(account):
                old = await self._item(account, contact)
                if not old.in_roster:
                    raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)  # §2.5.3
                version = await self.store.remove(account.local, account.domain, str(contact))
            if version is None:
                raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)
            # §2.5.2: the contact learns that both directions are cancelled.
            if old.subscription in HAS_TO or old.ask:
                await self._send_presence(account, contact, "unsubscribe")
            if old.subscription in HAS_FROM or old.pending_in:
                await self._send_presence(account, contact, "unsubscribed")
            if old.subscription in HAS_FROM:  # and it no longer sees the user's resources
                await self._all_unavailable(account, contact)
            self._push(account, removed_element(str(contact)), version)
            return None
        if subscription not in (None, "none", "to", "from", "both"):
            raise StanzaError(StanzaCondition.BAD_REQUEST, "bad subscription")
        name = el.attrs.get("name") or None
        if name is not None and len(name) > self.options.max_name_length:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "name too long")
        groups: list[str] = []
        for group in el.find_all("group", ns.ROSTER):
            text = group.text
            if not text:
                raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "empty group")  # §2.3.3
            if text in groups:
                raise StanzaError(StanzaCondition.BAD_REQUEST, "duplicate group")
            groups.append(text)
        # A client never sets the subscription state (§2.1.2.5): keep the stored one.
        try:
            async with self._lock(account):
                old = await self._item(account, contact)
                item = replace(old, name=name, groups=tuple(groups), in_roster=True)
                version = await self.store.put(
                    account.local, account.domain, item, self.options.max_items
                )
        except RosterFull as exc:
            raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, "roster is full") from exc
        self._push(account, item_element(item), version)
        return None

    def _push(self, account: JID, item: Element, version: int) -> None:
        """RFC 6121 §2.1.6: a push to every interested resource of the account."""
        sessions = self.ctx.sessions
        for session in sessions.resources(account):
            if session.jid in self.interested:
                session.deliver(push_element(session.jid, item, version))
        live = {s.jid for s in sessions.resources(account)}
        self.interested = {j for j in self.interested if j.bare != account or j in live}

    @hook("session/ended")
    async def forget(self, stanza: Stanza) -> bool:
        """A session that was available went away: it goes unavailable (§4.5.2)."""
        if stanza.from_ is not None:
            self.interested.discard(stanza.from_)
            # A session of a dead cluster node was available on that node, not this one.
            if stanza.from_ in self.available or stanza.meta.get("was_available"):
                await self._broadcast(stanza)
            await self._end_directed(stanza.from_, set())
        return False

    def _track_directed(self, stanza: Stanza) -> None:
        """§4.6.2: remember directed availability so that its end can be announced."""
        assert stanza.from_ is not None
        assert stanza.to is not None
        if stanza.type == "available":
            self.directed.setdefault(stanza.from_, set()).add(stanza.to)
        elif stanza.type == "unavailable":
            told = self.directed.get(stanza.from_)
            if told is not None:
                told.discard(stanza.to)
                if not told:
                    del self.directed[stanza.from_]

    async def _end_directed(self, full: JID, broadcast_to: set[JID]) -> None:
        """§4.6.3: unavailable to every directed-presence recipient the broadcast missed."""
        for to in sorted(self.directed.pop(full, set()), key=str):
            if to not in broadcast_to and to.bare not in broadcast_to:
                await self._send_presence(full, to, "unavailable")

    # --- subscriptions and presence (RFC 6121 §3, §4) -----------------------------------
    async def _item(self, account: JID, contact: JID) -> RosterItem:
        assert account.local is not None
        found = await self.store.item(account.local, account.domain, str(contact))
        return found or RosterItem(str(contact), in_roster=False)

    async def _transition(
        self, account: JID, contact: JID, step: Callable[[RosterItem], RosterItem | None]
    ) -> tuple[RosterItem, RosterItem | None]:
        """Read, change and store one item under the account's lock (one transaction).

        The lock is never held while routing, so two local users answering each other
        cannot wait on each other.
        """
        async with self._lock(account):
            old = await self._item(account, contact)
            new = step(old)
            if new is not None:
                await self._save(account, old, new)
            return old, new

    def _lock(self, account: JID) -> asyncio.Lock:
        lock = self._locks.get(account)
        if lock is None:
            lock = self._locks[account] = asyncio.Lock()
        return lock

    async def _save(self, account: JID, old: RosterItem, new: RosterItem) -> None:
        assert account.local is not None
        version = await self.store.put(account.local, account.domain, new, self.options.max_items)
        self._push_change(account, old, new, version)

    async def _joint_transition(
        self, joint: JointChange, inbound_step: Callable[[RosterItem], RosterItem | None]
    ) -> tuple[RosterItem, RosterItem | None]:
        """Both sides of a subscription change between two local accounts, read and written
        together: one transaction over the two rosters, under both accounts' locks (taken
        in a fixed order, so two such changes cannot wait on each other)."""
        sender, receiver = joint.account, joint.contact
        first, second = sorted((sender, receiver), key=str)
        async with self._lock(first), self._lock(second):
            sender_old = await self._item(sender, receiver)
            sender_new = joint.step(sender_old)
            old = await self._item(receiver, sender)
            new = inbound_step(old)
            changes = [
                (account.local or "", account.domain, item)
                for account, item in ((sender, sender_new), (receiver, new))
                if item is not None
            ]
            versions = await self.store.put_many(changes, self.options.max_items)
            joint.sender_new = sender_new
            written = iter(versions)
            if sender_new is not None:
                self._push_change(sender, sender_old, sender_new, next(written))
            if new is not None:
                self._push_change(receiver, old, new, next(written))
            return old, new

    def _push_change(self, account: JID, old: RosterItem, new: RosterItem, version: int) -> None:
        if new.in_roster and (
            old.subscription,
            old.ask,
            old.in_roster,
        ) != (new.subscription, new.ask, new.in_roster):
            self._push(account, item_element(new), version)

    async def _send_presence(self, from_: JID, to: JID, type_: str | None) -> None:
        el = Element("presence", ns.CLIENT, {"from": str(from_), "to": str(to)})
        if type_ is not None:
            el.attrs["type"] = type_
        await self.ctx.router.route(Stanza(el, to, from_))

    async def _send_current(self, account: JID, to: JID) -> None:
        """Every available resource's last presence, from its full JID, to ``to``."""
        for session in self.ctx.sessions.resources(account):
            presence = getattr(session, "presence", None)
            if session.is_available and isinstance(presence, Element):
                copy = presence.shallow_copy()
                copy.attrs["from"] = str(session.jid)
                copy.attrs["to"] = str(to)
                await self.ctx.router.route(Stanza(copy, to, session.jid))

    @hook("pre-presence")
    async def outbound_presence(self, stanza: Stanza) -> bool:
        """Presence the user sends: broadcasts and subscription requests (§3, §4.2)."""
        if stanza.from_ is None or stanza.from_.local is None:
            return False
        type_ = stanza.type
        if stanza.to is None:
            if type_ in ("available", "unavailable"):
                await self._broadcast(stanza)
                return True
            return False
        if type_ not in SUBSCRIPTION_TYPES:
            if type_ in ("available", "unavailable"):
                self._track_directed(stanza)
            return False  # directed presence: routed as it is
        account, contact = stanza.from_.bare, stanza.to.bare
        if contact == account:
            return True

        def step(item: RosterItem) -> RosterItem | None:
            new = outbound(item, type_)
            if new is not None and type_ in ("subscribe", "subscribed"):
                new = replace(new, in_roster=True)  # §3.1.2: the contact shows up
            return new

        joint: JointChange | None = None
        if contact.local is not None and self.ctx.is_local_host(contact.domain):
            # Both rosters are here: the contact's handler writes both sides at once.
            new = step(await self._item(account, contact))
            joint = JointChange(account, contact, step)
        else:
            _, new = await self._transition(account, contact, step)
        if new is None and type_ != "subscribe":
            return True  # nothing to tell the contact
        # §3.1.2: subscription stanzas leave from the bare JID, addressed to the bare JID.
        stanza.element.attrs["from"] = str(account)
        stanza.element.attrs["to"] = str(contact)
        stanza.from_, stanza.to = account, contact
        if joint is not None:
            stanza.meta[JOINT] = joint
        await self.ctx.router.route(stanza)
        if joint is not None:
            if joint.taken:
                new = joint.sender_new
            else:  # the contact's roster did not take it: the sender's side alone
                joint.taken = True
                _, new = await self._transition(account, contact, step)
        if type_ == "subscribed" and new is not None and new.subscription in HAS_FROM:
            await self._send_current(account, contact)  # §3.1.5
        elif type_ == "unsubscribed" and new is not None:
            await self._all_unavailable(account, contact)
        return True

    async def _all_unavailable(self, account: JID, contact: JID) -> None:
        """Unavailable presence from each of the account's available resources."""
        for session in self.ctx.sessions.resources(account):
            if session.is_available:
                await self._send_presence(session.jid, contact, "unavailable")

    @hook("presence/bare")
    @hook("presence/full")
    async def inbound_presence(self, stanza: Stanza) -> bool:
        """Presence arriving for a local user: subscription handling and probes."""
        type_ = stanza.type
        if stanza.to is None or stanza.from_ is None or stanza.to.local is None:
            return False
        account, contact = stanza.to.bare, stanza.from_.bare
        if type_ == "probe":
            item = await self._item(account, contact)
            if item.subscription in HAS_FROM:  # never leak to a non-subscriber (§4.3.2)
                await self._send_current(account, stanza.from_)
            return True
        if type_ not in SUBSCRIPTION_TYPES:
            return False
        joint = stanza.meta.get(JOINT)
        if (
            isinstance(joint, JointChange)
            and not joint.taken
            and (joint.account, joint.contact) == (contact, account)
        ):
            joint.taken = True
            old, new = await self._joint_transition(joint, lambda i: inbound(i, type_))
        else:
            old, new = await self._transition(account, contact, lambda i: inbound(i, type_))
        if new is None:
            if type_ == "subscribe" and old.subscription in HAS_FROM:
                await self._send_presence(account, contact, "subscribed")  # §3.1.3
            return True
        if type_ == "subscribe" and new.subscription in HAS_FROM:
            await self._send_presence(account, contact, "subscribed")  # pre-approved
            await self._send_current(account, contact)
            return True
        for session in self.ctx.sessions.resources(account):
            if session.is_available:
                session.deliver(stanza.element)
        if type_ == "unsubscribe" and old.subscription in HAS_FROM:
            await self._all_unavailable(account, contact)  # §3.3.3: it sees them go
        return True

    async def _broadcast(self, stanza: Stanza) -> None:
        """§4.2 and §4.5: tell subscribers, the user's other resources; probe on first."""
        full = stanza.from_
        assert full is not None
        assert full.local is not None
        account = full.bare
        is_initial = stanza.type == "available" and full not in self.available
        if stanza.type == "available":
            self.available.add(full)
        else:
            self.available.discard(full)
            if not any(j.bare == account for j in self.available):
                status = stanza.element.child_text("status", ns.CLIENT) or ""
                await self.last.set(full.local, full.domain, time.time(), status)
        _, items = await self.store.get(full.local, full.domain)
        subscribers = {JID.parse(i.contact) for i in items if i.subscription in HAS_FROM}
        for contact in sorted(subscribers, key=str):
            copy = stanza.element.shallow_copy()
            copy.attrs["to"] = str(contact)
            await self.ctx.router.route(Stanza(copy, contact, full))
        if stanza.type == "unavailable":
            await self._end_directed(full, subscribers)
        # §4.2.2, §4.4.2: every available resource, the one that sent it included.
        for session in self.ctx.sessions.resources(account):
            if session.is_available or (session.jid == full and stanza.type == "available"):
                copy = stanza.element.shallow_copy()
                copy.attrs["to"] = str(session.jid)
                session.deliver(copy)
        if not is_initial:
            return
        for item in items:
            contact = JID.parse(item.contact)
            if item.subscription in HAS_TO:
                await self._send_presence(full, contact, "probe")  # §4.3
            if item.pending_in:  # §3.1.3: requests are redelivered until answered
                request = Element(
                    "presence",
                    ns.CLIENT,
                    {"type": "subscribe", "from": item.contact, "to": str(account)},
                )
                self._deliver_to(full, request)
        for session in self.ctx.sessions.resources(account):
            if session.jid != full and session.is_available:
                presence = getattr(session, "presence", None)
                if isinstance(presence, Element):
                    copy = presence.shallow_copy()
                    copy.attrs["from"] = str(session.jid)
                    copy.attrs["to"] = str(full)
                    self._deliver_to(full, copy)

    def _deliver_to(self, full: JID, element: Element) -> None:
        session = self.ctx.sessions.get(full)
        if session is not None:
            session.deliver(element)

    # --- XEP-0012 last activity ----------------------------------------------------------
    @iq_handler("get", ns.LAST, Target.HOST)
    async def on_uptime(self, iq: Stanza) -> Element | None:
        """§5: to a server, the seconds since it started."""
        return Element("query", ns.LAST, {"seconds": str(int(time.time() - self.started))})

    @iq_handler("get", ns.LAST, Target.SELF | Target.BARE)
    async def on_last(self, iq: Stanza) -> Element | None:
        """§3: an account's last logout, only to its subscribers (and itself)."""
        assert iq.from_ is not None
        assert iq.to is not None
        account = iq.to.bare
        if iq.from_.bare != account:
            item = await self._item(account, iq.from_.bare)
            if item.subscription not in HAS_FROM:
                raise StanzaError(StanzaCondition.FORBIDDEN)  # §3: not subscribed
        if any(j.bare == account for j in self.available):
            return Element("query", ns.LAST, {"seconds": "0"})
        assert account.local is not None
        found = await self.last.get(account.local, account.domain)
        if found is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)
        at, status = found
        result = Element("query", ns.LAST, {"seconds": str(max(0, int(time.time() - at)))})
        if status:
            result.children.append(status)
        return result
