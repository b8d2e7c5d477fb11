"""Spam controls: strangers' messages and requests, and a cap on outgoing requests.

``strangers`` decides what happens to chat/normal messages and subscription requests from
someone who is not a contact (no roster item with a name shown or a subscription):

- ``allow`` (the default, as Prosody and ejabberd): delivered as usual;
- ``refuse``: messages bounce with ``service-unavailable`` (the answer for a missing
  account, so refusal reveals nothing) and requests are dropped;
- ``quarantine``: held back; they are delivered when the user adds the sender or
  approves their request, and ``heron quarantine`` shows them to the admin.

Replies always pass: someone the user has written to recently is not a stranger. Each user
may send at most ``max_subscription_requests`` requests per hour (spam by ``subscribe``).
Spam reports (XEP-0377) arrive with the blocking command and are stored by that module.
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from heron.config import ConfigError, build_options
from heron.core.module import Module, hook
from heron.jid import JID
from heron.ratelimit import TokenBucket
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.storage.sqlite import Migration, transaction
from heron.xmlstream import serialize
from heron.xmlstream.stored import parse_stored

MIGRATIONS: Final = (
    Migration(
        "antispam",
        1,
        """
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            sender TEXT NOT NULL,
            at REAL NOT NULL,
            xml TEXT NOT NULL
        );
        CREATE INDEX quarantine_user ON quarantine (domain, username, sender, id);
        """,
    ),
)
POLICIES: Final = ("allow", "refuse", "quarantine")
REPLY_MEMORY: Final = 100000  # (user, contact) pairs remembered as "written to recently"


@dataclass(frozen=True, slots=True)
class AntispamOptions:
    strangers: str = "allow"
    max_subscription_requests: int = 50
    """Outgoing subscription requests per user per hour."""
    max_quarantined: int = 200
    """Held messages per user; past it, the oldest are dropped."""


class AntispamModule(Module):
    name = "antispam"
    description = "Spam controls: strangers' messages and requests, outgoing request caps"

    async def start(self) -> None:
        path = f'hosts."{self.ctx.domain}".modules.antispam'
        self.options = build_options(AntispamOptions, self.ctx.options, path)
        if self.options.strangers not in POLICIES:
            raise ConfigError(f"{path}.strangers: one of {', '.join(POLICIES)}")
        if self.options.max_subscription_requests < 1:
            raise ConfigError(f"{path}.max_subscription_requests: must be ≥ 1")
        self.db = self.ctx.sqlite()
        await self.db.migrate(MIGRATIONS)
        host = self.ctx.host
        if self.options.strangers != "allow" and host is not None and "roster" not in host.modules:
            raise ConfigError(f"{path}.strangers: needs the roster module (who is a contact?)")
        self.written_to: OrderedDict[tuple[JID, JID], None] = OrderedDict()
        self.requests: dict[JID, TokenBucket] = {}

    # --- the user's own traffic -------------------------------------------------------
    @hook("pre-message", priority=50)
    async def remember_reply(self, stanza: Stanza) -> bool:
        """Whoever the user writes to may write back, contact or not."""
        if stanza.from_ is not None and stanza.to is not None:
            key = (stanza.from_.bare, stanza.to.bare)
            self.written_to[key] = None
            self.written_to.move_to_end(key)
            if len(self.written_to) > REPLY_MEMORY:
                self.written_to.popitem(last=False)
        return False

    @hook("pre-presence", priority=50)
    async def outgoing_requests(self, stanza: Stanza) -> bool:
        if stanza.from_ is None or stanza.to is None:
            return False
        account = stanza.from_.bare
        if stanza.type == "subscribe":
            now = time.monotonic()
            bucket = self.requests.get(account)
            if bucket is None:
                if len(self.requests) > REPLY_MEMORY:
                    self.requests = {k: b for k, b in self.requests.items() if not b.is_full(now)}
                limit = self.options.max_subscription_requests
                bucket = self.requests[account] = TokenBucket(limit / 3600.0, limit, now)
            if not bucket.try_take(now):
                raise StanzaError(
                    StanzaCondition.POLICY_VIOLATION, "too many subscription requests; wait"
                )
        elif stanza.type == "subscribed":
            await self._release(account, stanza.to.bare)  # approving a held request
        return False

    @hook("pre-iq", priority=50)
    async def roster_add(self, stanza: Stanza) -> bool:
        """Adding someone to the roster releases what was held from them."""
        payload = stanza.payload
        if (
            stanza.type == "set"
            and stanza.from_ is not None
            and payload is not None
            and payload.ns == "jabber:iq:roster"
        ):
            for item in payload.find_all("item", "jabber:iq:roster"):
                if item.attrs.get("subscription") == "remove":
                    continue
                try:
                    contact = JID.parse(item.attrs.get("jid", "")).bare
                except ValueError:
                    continue
                await self._release(stanza.from_.bare, contact)
        return False

    # --- strangers --------------------------------------------------------------------
    async def _is_stranger(self, account: JID, sender: JID) -> bool:
        if sender.local is None or sender.bare == account:
            return False  # servers and components, and the user's own resources
        if (account, sender.bare) in self.written_to:
            return False
        contacts = self.ctx.registry.contacts
        return contacts is None or not await contacts.is_contact(account, sender.bare)

    async def _stranger(self, stanza: Stanza) -> bool:
        policy = self.options.strangers
        to, sender = stanza.to, stanza.from_
        if policy == "allow" or to is None or sender is None or to.local is None:
            return False
        if stanza.kind == "message" and stanza.type not in ("chat", "normal"):
            return False
        if stanza.kind == "presence" and stanza.type != "subscribe":
            return False
        if not await self._is_stranger(to.bare, sender):
            return False
        if policy == "quarantine":
            await self._hold(to.bare, sender.bare, stanza)
            return True
        if stanza.kind == "message":
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
        return True  # a refused request is dropped, as if never sent

    @hook("message/bare", priority=90)
    async def message_bare(self, stanza: Stanza) -> bool:
        return await self._stranger(stanza)

    @hook("message/full", priority=90)
    async def message_full(self, stanza: Stanza) -> bool:
        return await self._stranger(stanza)

    @hook("presence/bare", priority=90)
    async def presence_bare(self, stanza: Stanza) -> bool:
        return await self._stranger(stanza)

    # --- quarantine -------------------------------------------------------------------
    async def _hold(self, account: JID, sender: JID, stanza: Stanza) -> None:
        xml = serialize(stanza.element)
        limit = self.options.max_quarantined

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT INTO quarantine (domain, username, sender, at, xml)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (account.domain, account.local, str(sender), time.time(), xml),
                )
                conn.execute(
                    "DELETE FROM quarantine WHERE domain = ? AND username = ? AND id NOT IN"
                    " (SELECT id FROM quarantine WHERE domain = ? AND username = ?"
                    " ORDER BY id DESC LIMIT ?)",
                    (account.domain, account.local, account.domain, account.local, limit),
                )

        await self.db.run(write)
        self.ctx.log.info("held a %s from stranger %s for %s", stanza.kind, sender, account)

    async def _release(self, account: JID, sender: JID) -> None:
        if self.options.strangers != "quarantine":
            return

        def take(conn: sqlite3.Connection) -> list[str]:
            with transaction(conn):
                rows = conn.execute(
                    "SELECT xml FROM quarantine WHERE domain = ? AND username = ? AND sender = ?"
                    " ORDER BY id",
                    (account.domain, account.local, str(sender)),
                ).fetchall()
                conn.execute(
                    "DELETE FROM quarantine WHERE domain = ? AND username = ? AND sender = ?",
                    (account.domain, account.local, str(sender)),
                )
                return [str(r[0]) for r in rows]

        held = await self.db.run(take)
        self.written_to[(account, sender)] = None  # from now on a contact: let them through
        for xml in held:
            element = parse_stored(xml)
            if element is not None:
                await self.ctx.send(element)


def quarantined(conn: sqlite3.Connection, domain: str) -> list[tuple[str, str, float, str]]:
    """(user, sender, unix time, XML) of every held stanza of ``domain``, for the CLI."""
    rows = conn.execute(
        "SELECT username, sender, at, xml FROM quarantine WHERE domain = ? ORDER BY id",
        (domain,),
    ).fetchall()
    return [(str(u), str(s), float(a), str(x)) for u, s, a, x in rows]
