"""XEP-0160: Best Practices for Handling Offline Messages.

A chat or normal message for an existing account with no available resource is stored with a
XEP-0203 delay stamp and delivered, in order, when the account next sends initial presence.
A message is deleted only after it has been handed to the session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from heron import ns, timestamps
from heron.config import build_options
from heron.core.module import Module, Xep, hook
from heron.jid import JID
from heron.modules.offline.store import OfflineStore, SqlOfflineStore
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream import serialize
from heron.xmlstream.stored import parse_stored

MSGOFFLINE: Final = "msgoffline"


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
    stores = (SqlOfflineStore,)

    async def start(self) -> None:
        self.options = build_options(
            OfflineOptions, self.ctx.options, f'hosts."{self.ctx.domain}".modules.offline'
        )
        # Queued messages are written when the module unloads: a stop loses nothing.
        self.messages: OfflineStore = self.ctx.closing(self.ctx.store(SqlOfflineStore))
        self.ctx.on_account_deleted(self.on_account_deleted)

    async def on_account_deleted(self, account: JID) -> None:
        if account.local is not None:
            await self.messages.forget(account.local, account.domain)

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
        if not await self.messages.add(to.local, to.domain, xml, self.options.max_messages):
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
        rows = await self.messages.fetch(full.local, full.domain)
        delivered: list[int] = []
        for row_id, xml in rows:
            loaded = load_stanza(xml)
            if loaded is not None:
                session.deliver(loaded.element)
            delivered.append(row_id)  # unreadable rows are dropped, not retried forever
        if delivered:
            await self.messages.delete(delivered)
        return False
