"""XEP-0357 Push Notifications: wake a phone whose app is asleep.

A client registers an app server (a JID and a node, with publish-options such as the
app server's secret). When a message arrives for the account while it has no connected
session (the message goes to offline storage) or while its session is hibernated
(XEP-0198), Heron publishes a summary to every registered app server: how many messages
and from whom, never their content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from heron import ns
from heron.config import option
from heron.core.module import Module, ModuleContext, Xep, hook, iq_handler
from heron.core.registry import Target
from heron.jid import JID, InvalidJID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.stanza.forms import add_field, data_form
from heron.storage.db import Dialect, Migration, SqlStore
from heron.storage.owned import owned_table
from heron.xmlstream import serialize
from heron.xmlstream.element import Element
from heron.xmlstream.stored import parse_stored


@dataclass(frozen=True, slots=True)
class PushOptions:
    max_registrations: int = option(20, min=1, max=1000)
    """App servers one account may register."""


@dataclass(frozen=True, slots=True)
class Registration:
    service: str  # the app server's JID
    node: str
    options: str | None  # the serialized publish-options form, if the client gave one


class TooMany(Exception):
    """The account has registered as many app servers as it may."""


class PushStore(Protocol):
    """Each account's app servers (gone with the account)."""

    async def enable(self, account: JID, registration: Registration, limit: int) -> None:
        """Add or replace (same service and node); `TooMany` past ``limit``."""
        ...

    async def disable(self, account: JID, service: str, node: str | None) -> None:
        """Remove one node of an app server, or all of them (``node`` None)."""
        ...

    async def registrations(self, account: JID) -> list[Registration]:
        """The account's app servers, in no particular order."""
        ...


_COLUMNS: Final = """
    domain TEXT NOT NULL,
    username TEXT NOT NULL,
    service TEXT NOT NULL,
    node TEXT NOT NULL,
    options TEXT,
    PRIMARY KEY (domain, username, service, node)"""


class SqlPushStore(SqlStore):
    """The ``push_registrations`` table, on either engine."""

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = owned_table(
        "push", "push_registrations", _COLUMNS, "domain, username, service, node, options"
    )

    async def enable(self, account: JID, registration: Registration, limit: int) -> None:
        r = registration
        owner = (account.domain, account.local)
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO push_registrations (domain, username, service, node, options)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (domain, username, service, node)"
                " DO UPDATE SET options = excluded.options",
                *owner,
                r.service,
                r.node,
                r.options,
            )
            count = await tx.fetchval(
                "SELECT COUNT(*) FROM push_registrations WHERE domain = ? AND username = ?",
                *owner,
            )
            if int(count) > limit:
                raise TooMany(f"at most {limit} app servers")  # rolls back

    async def disable(self, account: JID, service: str, node: str | None) -> None:
        if node is None:
            await self.db.execute(
                "DELETE FROM push_registrations WHERE domain = ? AND username = ? AND service = ?",
                account.domain,
                account.local,
                service,
            )
        else:
            await self.db.execute(
                "DELETE FROM push_registrations WHERE domain = ? AND username = ? AND service = ?"
                " AND node = ?",
                account.domain,
                account.local,
                service,
                node,
            )

    async def registrations(self, account: JID) -> list[Registration]:
        rows = await self.db.fetch(
            "SELECT service, node, options FROM push_registrations"
            " WHERE domain = ? AND username = ?",
            account.domain,
            account.local,
        )
        return [Registration(str(s), str(n), None if o is None else str(o)) for s, n, o in rows]


def summary(count: int, sender: JID) -> Element:
    """The XEP-0357 §7 notification: a count and the last sender, no body."""
    notification = Element("notification", ns.PUSH)
    form = data_form("submit", parent=notification)
    for var, value in (
        ("FORM_TYPE", ns.PUSH_SUMMARY),
        ("message-count", str(count)),
        ("last-message-sender", str(sender.bare)),
    ):
        add_field(form, var, [value])
    return notification


class PushModule(Module):
    name = "push"
    description = "Push notifications to app servers while a phone's app sleeps"
    xeps = (
        Xep(
            357, "0.4.1", "complete", "summaries without message bodies", prosody="community module"
        ),
    )
    stores = (SqlPushStore,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(PushOptions)
        self.store: PushStore = ctx.store(SqlPushStore)
        self.pending: dict[JID, int] = {}  # messages notified since the account was last seen

    async def start(self) -> None:
        self.ctx.add_account_feature(ns.PUSH)

    # --- enable / disable -------------------------------------------------------------
    @iq_handler("set", ns.PUSH, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        payload, account = iq.query, iq.sender.bare
        try:
            service = str(JID.parse(payload.attrs.get("jid", "")))
        except InvalidJID as exc:
            raise StanzaError(StanzaCondition.JID_MALFORMED, "jid: the app server") from exc
        node = payload.attrs.get("node")
        if payload.tag == "enable":
            if not node:
                raise StanzaError(StanzaCondition.BAD_REQUEST, "enable needs a node")
            form = payload.find("x", ns.DATA_FORMS)
            options = serialize(form, ns.PUSH) if form is not None else None
            registration = Registration(service, node, options)
            try:
                await self.store.enable(account, registration, self.options.max_registrations)
            except TooMany as exc:
                raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, str(exc)) from exc
        elif payload.tag == "disable":
            await self.store.disable(account, service, node)
        else:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "enable or disable")
        return None

    # --- when to notify ---------------------------------------------------------------
    @hook("message/offline", priority=20)  # before offline storage takes it
    async def offline(self, stanza: Stanza) -> bool:
        if stanza.to is not None and stanza.from_ is not None and _worth_it(stanza):
            await self._notify(stanza.to.bare, stanza.from_)
        return False

    @hook("message/delivered")
    async def hibernated(self, stanza: Stanza) -> bool:
        if stanza.to is None or stanza.from_ is None or not _worth_it(stanza):
            return False
        delivered = stanza.meta.get("delivered_to")
        receivers = delivered if isinstance(delivered, set) else set()
        sessions = [self.ctx.sessions.get(jid) for jid in receivers]
        if sessions and all(s is not None and s.hibernating for s in sessions):
            await self._notify(stanza.to.bare, stanza.from_)
        return False

    @hook("session/ended")
    async def seen(self, stanza: Stanza) -> bool:
        if stanza.from_ is not None:
            self.pending.pop(stanza.from_.bare, None)
        return False

    async def _notify(self, account: JID, sender: JID) -> None:
        registrations = await self.store.registrations(account)
        if not registrations:
            return
        count = self.pending[account] = self.pending.get(account, 0) + 1
        for r in registrations:
            iq = Element(
                "iq",
                ns.CLIENT,
                {"type": "set", "to": r.service, "from": str(account), "id": f"push-{count}"},
            )
            pubsub = iq.add("pubsub", ns.PUBSUB)
            publish = pubsub.add("publish", ns.PUBSUB, {"node": r.node})
            publish.add("item", ns.PUBSUB).append(summary(count, sender))
            form = parse_stored(r.options, expect=("x", ns.DATA_FORMS)) if r.options else None
            if form is not None:  # e.g. the app server's secret (XEP-0357 §5)
                pubsub.add("publish-options", ns.PUBSUB).append(form)
            await self.ctx.send(iq)


def _worth_it(stanza: Stanza) -> bool:
    return stanza.type in ("chat", "normal") and stanza.element.find("body", ns.CLIENT) is not None
