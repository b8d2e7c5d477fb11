"""RFC 6121 §2: roster get, set and remove, pushes, and versioning (XEP-0237).

Subscription states are stored with each item; the subscription state machine (RFC 6121 §3)
and presence broadcast build on this module and are not part of it yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from heron import ns
from heron.config import build_options
from heron.core.module import Module, Xep, hook, iq_handler
from heron.core.registry import Target
from heron.jid import JID, InvalidJID
from heron.modules.roster.store import MIGRATIONS, RosterFull, RosterItem, SqlRosterStore
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

ROSTER = "jabber:iq:roster"
ROSTER_VER_FEATURE = "urn:xmpp:features:rosterver"


@dataclass(frozen=True, slots=True)
class RosterOptions:
    max_items: int = 1000
    max_name_length: int = 1024


def item_element(item: RosterItem) -> Element:
    el = Element("item", ROSTER, {"jid": item.contact, "subscription": item.subscription})
    if item.name:
        el.attrs["name"] = item.name
    if item.ask:
        el.attrs["ask"] = "subscribe"
    for group in item.groups:
        el.add("group", ROSTER, text=group)
    return el


class RosterModule(Module):
    name = "roster"
    description = "Contact lists with pushes to every interested resource and versioning"
    xeps = (Xep(237, "1.3", "partial", "full roster when the client's version is old"),)

    async def start(self) -> None:
        self.options = build_options(
            RosterOptions, self.ctx.options, f'hosts."{self.ctx.domain}".modules.roster'
        )
        await self.ctx.server.db_or_fail().migrate(MIGRATIONS)
        self.store = SqlRosterStore(self.ctx.server.db_or_fail())
        self.interested: set[JID] = set()  # full JIDs that requested the roster (§2.1.6)
        self.ctx.registry.postauth_features.append(self._ver_feature)

    async def stop(self) -> None:
        self.ctx.registry.postauth_features.remove(self._ver_feature)

    @staticmethod
    def _ver_feature() -> Element:
        return Element("ver", ROSTER_VER_FEATURE)

    @staticmethod
    def _account(iq: Stanza) -> JID:
        if iq.from_ is None or iq.from_.local is None:
            raise StanzaError(StanzaCondition.FORBIDDEN)
        return iq.from_.bare

    @iq_handler("get", ROSTER, Target.SELF)
    async def on_get(self, iq: Stanza) -> Element | None:
        account = self._account(iq)
        assert account.local is not None
        assert iq.from_ is not None
        self.interested.add(iq.from_)
        query = iq.payload
        version, items = await self.store.get(account.local, account.domain)
        client_ver = query.attrs.get("ver") if query is not None else None
        if client_ver is not None and client_ver == str(version):
            return None  # RFC 6121 §2.6.3: nothing changed, an empty result
        result = Element("query", ROSTER, {"ver": str(version)})
        result.children.extend(item_element(i) for i in items)
        return result

    @iq_handler("set", ROSTER, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        account = self._account(iq)
        assert account.local is not None
        query = iq.payload
        items = query.find_all("item", ROSTER) if query is not None else []
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
            version = await self.store.remove(account.local, account.domain, str(contact))
            if version is None:
                raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)  # §2.5.3
            pushed = Element("item", ROSTER, {"jid": str(contact), "subscription": "remove"})
            self._push(account, pushed, version)
            return None
        if subscription not in (None, "none", "to", "from", "both"):
            raise StanzaError(StanzaCondition.BAD_REQUEST, "bad subscription")
        name = el.attrs.get("name") or None
        if name is not None and len(name) > self.options.max_name_length:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "name too long")
        groups: list[str] = []
        for group in el.find_all("group", ROSTER):
            text = group.text
            if not text:
                raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "empty group")  # §2.3.3
            if text in groups:
                raise StanzaError(StanzaCondition.BAD_REQUEST, "duplicate group")
            groups.append(text)
        # A client never sets the subscription state (§2.1.2.5): keep the stored one.
        _, current = await self.store.get(account.local, account.domain)
        old = next((i for i in current if i.contact == str(contact)), None)
        item = RosterItem(
            str(contact),
            name,
            old.subscription if old else "none",
            old.ask if old else False,
            tuple(groups),
        )
        try:
            version = await self.store.put(
                account.local, account.domain, item, self.options.max_items
            )
        except RosterFull as exc:
            raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, "roster is full") from exc
        self._push(account, item_element(item), version)
        return None

    def _push(self, account: JID, item: Element, version: int) -> None:
        """RFC 6121 §2.1.6: a push to every interested resource of the account."""
        sessions = self.ctx.server.sessions
        for session in sessions.resources(account):
            if session.jid not in self.interested:
                continue
            push = Element(
                "iq", ns.CLIENT, {"type": "set", "id": f"push{version}", "to": str(session.jid)}
            )
            push.attrs["from"] = str(account)
            query = push.add("query", ROSTER, {"ver": str(version)})
            query.append(item.copy())
            session.deliver(push)
        live = {s.jid for s in sessions.resources(account)}
        self.interested = {j for j in self.interested if j.bare != account or j in live}

    @hook("session/ended")
    async def forget(self, stanza: Stanza) -> bool:
        if stanza.from_ is not None:
            self.interested.discard(stanza.from_)
        return False
