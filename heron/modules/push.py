"""XEP-0357 Push Notifications: wake a phone whose app is asleep.

A client registers an app server (a JID and a node, with publish-options such as the
app server's secret). When a message arrives for the account while it has no connected
session (the message goes to offline storage) or while its session is hibernated
(XEP-0198), Heron publishes a summary to every registered app server: how many messages
and from whom, never their content.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from heron import ns
from heron.core.module import Module, Xep, hook, iq_handler
from heron.core.registry import Target
from heron.jid import JID, InvalidJID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.storage.sqlite import Migration, transaction
from heron.xmlstream import serialize
from heron.xmlstream.element import Element
from heron.xmlstream.stored import parse_stored

PUSH: Final = "urn:xmpp:push:0"
SUMMARY: Final = "urn:xmpp:push:summary"
PUBSUB: Final = "http://jabber.org/protocol/pubsub"
DATA: Final = "jabber:x:data"
MAX_REGISTRATIONS: Final = 20
MIGRATIONS: Final = (
    Migration(
        "push",
        1,
        """
        CREATE TABLE push_registrations (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            service TEXT NOT NULL,
            node TEXT NOT NULL,
            options TEXT,
            PRIMARY KEY (domain, username, service, node)
        );
        """,
    ),
)


def summary(count: int, sender: JID) -> Element:
    """The XEP-0357 §7 notification: a count and the last sender, no body."""
    notification = Element("notification", PUSH)
    form = notification.add("x", DATA, {"type": "submit"})
    for var, value in (
        ("FORM_TYPE", SUMMARY),
        ("message-count", str(count)),
        ("last-message-sender", str(sender.bare)),
    ):
        form.add("field", DATA, {"var": var}).add("value", DATA, text=value)
    return notification


class PushModule(Module):
    name = "push"
    description = "Push notifications to app servers while a phone's app sleeps"
    xeps = (
        Xep(
            357, "0.4.1", "complete", "summaries without message bodies", prosody="community module"
        ),
    )

    async def start(self) -> None:
        self.db = self.ctx.sqlite()
        await self.db.migrate(MIGRATIONS)
        self.pending: dict[JID, int] = {}  # messages notified since the account was last seen
        self.ctx.registry.account_features.add(PUSH)

    async def stop(self) -> None:
        self.ctx.registry.account_features.discard(PUSH)

    # --- enable / disable -------------------------------------------------------------
    @iq_handler("set", PUSH, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        assert iq.from_ is not None
        payload = iq.payload
        assert payload is not None
        account = iq.from_.bare
        try:
            service = str(JID.parse(payload.attrs.get("jid", "")))
        except InvalidJID as exc:
            raise StanzaError(StanzaCondition.JID_MALFORMED, "jid: the app server") from exc
        node = payload.attrs.get("node")
        if payload.tag == "enable":
            if not node:
                raise StanzaError(StanzaCondition.BAD_REQUEST, "enable needs a node")
            form = payload.find("x", DATA)
            options = serialize(form, PUSH) if form is not None else None
            await self.db.run(lambda conn: _enable(conn, account, service, node, options))
        elif payload.tag == "disable":
            await self.db.run(lambda conn: _disable(conn, account, service, node))
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
        registrations = await self.db.run(lambda conn: _registrations(conn, account))
        if not registrations:
            return
        count = self.pending[account] = self.pending.get(account, 0) + 1
        for service, node, options in registrations:
            iq = Element(
                "iq",
                ns.CLIENT,
                {"type": "set", "to": service, "from": str(account), "id": f"push-{count}"},
            )
            pubsub = iq.add("pubsub", PUBSUB)
            publish = pubsub.add("publish", PUBSUB, {"node": node})
            publish.add("item", PUBSUB).append(summary(count, sender))
            form = parse_stored(options, expect=("x", DATA)) if options else None
            if form is not None:  # e.g. the app server's secret (XEP-0357 §5)
                pubsub.add("publish-options", PUBSUB).append(form)
            await self.ctx.send(iq)


def _worth_it(stanza: Stanza) -> bool:
    return stanza.type in ("chat", "normal") and stanza.element.find("body", ns.CLIENT) is not None


def _enable(
    conn: sqlite3.Connection, account: JID, service: str, node: str, options: str | None
) -> None:
    with transaction(conn):
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM push_registrations WHERE domain = ? AND username = ?",
            (account.domain, account.local),
        ).fetchone()
        if count >= MAX_REGISTRATIONS:
            raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, "too many app servers")
        conn.execute(
            "INSERT OR REPLACE INTO push_registrations (domain, username, service, node, options)"
            " VALUES (?, ?, ?, ?, ?)",
            (account.domain, account.local, service, node, options),
        )


def _disable(conn: sqlite3.Connection, account: JID, service: str, node: str | None) -> None:
    with transaction(conn):
        if node is None:
            conn.execute(
                "DELETE FROM push_registrations WHERE domain = ? AND username = ? AND service = ?",
                (account.domain, account.local, service),
            )
        else:
            conn.execute(
                "DELETE FROM push_registrations WHERE domain = ? AND username = ? AND service = ?"
                " AND node = ?",
                (account.domain, account.local, service, node),
            )


def _registrations(conn: sqlite3.Connection, account: JID) -> list[tuple[str, str, str | None]]:
    rows = conn.execute(
        "SELECT service, node, options FROM push_registrations WHERE domain = ? AND username = ?",
        (account.domain, account.local),
    ).fetchall()
    return [(str(s), str(n), o) for s, n, o in rows]
