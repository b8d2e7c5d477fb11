"""XEP-0160: Best Practices for Handling Offline Messages.

A chat or normal message for an existing account with no available resource is stored with a
XEP-0203 delay stamp and delivered, in order, when the account next sends initial presence.
A message is deleted only after it has been handed to the session.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Final

from heron import ns, timestamps
from heron.config import build_options
from heron.core.module import Module, Xep, hook
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.storage.sqlite import Migration, transaction
from heron.xmlstream import serialize
from heron.xmlstream.stored import parse_stored

MSGOFFLINE: Final = "msgoffline"
MIGRATIONS: Final = (
    Migration(
        "offline",
        1,
        """
        CREATE TABLE offline_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            xml TEXT NOT NULL
        );
        CREATE INDEX offline_messages_user ON offline_messages (domain, username, id);
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    max_messages: int = 500


def load_stanza(xml: str) -> Stanza | None:
    """Re-parse stored XML with the normal limits: stored data can never crash a session."""
    el = parse_stored(xml)
    if el is None:
        return None
    try:
        to = JID.parse(el.attrs["to"]) if "to" in el.attrs else None
        from_ = JID.parse(el.attrs["from"]) if "from" in el.attrs else None
    except ValueError:
        return None
    return Stanza(el, to, from_)


class OfflineModule(Module):
    name = "offline"
    description = "Stores messages for offline users and delivers them on their next login"
    xeps = (
        Xep(160, "1.0.1", "complete"),
        Xep(203, "2.0", "complete", "delay stamps on stored messages"),
    )
    disco_features = (MSGOFFLINE,)

    async def start(self) -> None:
        self.options = build_options(
            OfflineOptions, self.ctx.options, f'hosts."{self.ctx.domain}".modules.offline'
        )
        self.db = self.ctx.sqlite()
        await self.db.migrate(MIGRATIONS)

    @hook("message/offline")
    async def store(self, stanza: Stanza) -> bool:
        to = stanza.to
        if to is None or to.local is None or stanza.type not in ("chat", "normal"):
            return False
        account = to.bare
        if not await self.ctx.accounts.exists(account):
            return False  # the router answers service-unavailable (RFC 6121 §8.5.1)
        element = stanza.element.copy()
        stamp = timestamps.stamp(time.time())
        element.add("delay", ns.DELAY, {"from": self.ctx.domain, "stamp": stamp}, "Offline")
        xml = serialize(element, ns.CLIENT)
        limit = self.options.max_messages
        local, domain = to.local, to.domain

        def insert(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                (count,) = conn.execute(
                    "SELECT COUNT(*) FROM offline_messages WHERE domain = ? AND username = ?",
                    (domain, local),
                ).fetchone()
                if count >= limit:
                    return False
                conn.execute(
                    "INSERT INTO offline_messages (domain, username, xml) VALUES (?, ?, ?)",
                    (domain, local, xml),
                )
                return True

        if not await self.db.run(insert):
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE, "offline storage is full")
        return True

    @hook("pre-presence", priority=10)  # before the roster consumes the broadcast
    async def flush(self, stanza: Stanza) -> bool:
        """On available broadcast presence, hand stored messages to that session in order."""
        full = stanza.from_
        if stanza.to is not None or stanza.type != "available" or full is None:
            return False
        if full.local is None:
            return False
        session = self.ctx.sessions.get(full)
        if session is None or session.priority < 0:
            return False  # negative priority never gets bare-JID messages (RFC 6121 §4.7.2.3)
        local, domain = full.local, full.domain

        def fetch(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            return conn.execute(
                "SELECT id, xml FROM offline_messages WHERE domain = ? AND username = ? "
                "ORDER BY id",
                (domain, local),
            ).fetchall()

        rows = await self.db.run(fetch)
        delivered: list[int] = []
        for row_id, xml in rows:
            loaded = load_stanza(xml)
            if loaded is not None:
                session.deliver(loaded.element)
            delivered.append(row_id)  # unreadable rows are dropped, not retried forever
        if delivered:

            def delete(conn: sqlite3.Connection) -> None:
                with transaction(conn):
                    conn.executemany(
                        "DELETE FROM offline_messages WHERE id = ?", [(i,) for i in delivered]
                    )

            await self.db.run(delete)
        return False
