"""XEP-0191: Blocking Command.

A blocked JID (a bare JID, a full JID or a domain) can neither reach the user nor be reached:
its messages and IQs get errors, its presence is dropped, and the user's own stanzas to it are
refused with ``not-acceptable`` and the ``blocked`` application condition (XEP-0191 §3.5).

XEP-0377: a ``<report/>`` inside a blocked item is stored for the server's admins (``heron
reports``) with its reason, text and the stanza-ids it names; the block happens either way.

Each account may block at most ``max_items`` JIDs (``resource-constraint`` past it), so a
client cannot grow the table without bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from heron import ns
from heron.config import option
from heron.core.module import Module, ModuleContext, Xep, hook, iq_handler
from heron.core.registry import Target
from heron.jid import JID, InvalidJID
from heron.modules.blocking.store import (
    BlockingStore,
    Change,
    ListFull,
    Report,
    SqlBlockingStore,
)
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

MAX_REPORT_TEXT: Final = 4000


@dataclass(frozen=True, slots=True)
class BlockingOptions:
    max_items: int = option(1000, min=1)
    """JIDs one account may block."""


def parse_report(reporter: JID, reported: str, item: Element) -> Report | None:
    report = item.find("report", ns.REPORTING)
    if report is None:
        return None
    reason = report.attrs.get("reason", "")
    if not reason:
        raise StanzaError(StanzaCondition.BAD_REQUEST, "a report needs a reason")  # §3
    text = "\n".join(t.text.strip() for t in report.find_all("text", ns.REPORTING))
    ids = tuple(
        f"{sid.attrs.get('by', '')} {sid.attrs.get('id', '')}"
        for sid in report.find_all("stanza-id", ns.SID)
    )
    return Report(str(reporter.bare), reported, reason, text[:MAX_REPORT_TEXT], ids, time.time())


def matches(blocked: set[str], jid: JID) -> bool:
    """XEP-0191 §3.4 by way of XEP-0016 matching: full, bare, domain/resource, domain."""
    candidates = {str(jid), str(jid.bare), jid.domain}
    if jid.resource is not None:
        candidates.add(f"{jid.domain}/{jid.resource}")
    return not blocked.isdisjoint(candidates)


class BlockingModule(Module):
    name = "blocking"
    description = "Blocking command: block and unblock JIDs in both directions"
    xeps = (
        Xep(191, "1.3", "complete"),
        Xep(
            377,
            "0.4.1",
            "complete",
            "reports stored for admins",
            prosody="community module",
            ejabberd="no",
        ),
    )
    disco_features = (ns.BLOCKING, ns.REPORTING)
    stores = (SqlBlockingStore,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(BlockingOptions)
        self.store: BlockingStore = ctx.store(SqlBlockingStore)
        self.cache: dict[JID, set[str]] = {}  # bare JID → blocked items (read on first use)
        self.interested: set[JID] = set()

    async def start(self) -> None:
        self.ctx.on_account_deleted(self.on_account_deleted)

    async def on_account_deleted(self, account: JID) -> None:
        """The rows went with the account (a foreign key); what is cached goes too."""
        self.cache.pop(account, None)

    async def blocked_by(self, account: JID) -> set[str]:
        cached = self.cache.get(account)
        if cached is None:
            cached = self.cache[account] = await self.store.blocked(account)
        return cached

    async def _blocks(self, account: JID | None, other: JID | None) -> bool:
        """True when ``account`` (a user's JID) blocks ``other``."""
        if account is None or other is None or account.local is None:
            return False
        return matches(await self.blocked_by(account.bare), other)

    # --- the command ------------------------------------------------------------------
    @iq_handler("get", ns.BLOCKING, Target.SELF)
    async def on_get(self, iq: Stanza) -> Element | None:
        self.interested.add(iq.sender)
        result = Element("blocklist", ns.BLOCKING)
        for item in sorted(await self.blocked_by(iq.sender.bare)):
            result.add("item", ns.BLOCKING, {"jid": item})
        return result

    @staticmethod
    def _items(payload: Element) -> list[tuple[str, Element]]:
        items = []
        for item in payload.find_all("item", ns.BLOCKING):
            try:
                items.append((str(JID.parse(item.attrs.get("jid", ""))), item))
            except InvalidJID as exc:
                raise StanzaError(StanzaCondition.JID_MALFORMED) from exc
        return items

    @iq_handler("set", ns.BLOCKING, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        payload, account = iq.query, iq.sender.bare
        found = self._items(payload)
        items = [jid for jid, _item in found]
        if payload.tag == "block":
            if not items:
                raise StanzaError(StanzaCondition.BAD_REQUEST, "nothing to block")  # §3.3
            reports = [r for j, el in found if (r := parse_report(account, j, el)) is not None]
            await self._write(account, Change(add=items, reports=reports))
            for report in reports:
                self.ctx.log.warning(
                    "%s reported %s (%s)", report.reporter, report.reported, report.reason
                )
        elif payload.tag == "unblock":
            await self._write(account, Change(remove=items, remove_all=not items))
        else:
            raise StanzaError(StanzaCondition.BAD_REQUEST)
        self._push(account, payload)
        if payload.tag == "block":
            for item in items:  # §3.3: blocked contacts see the user go unavailable
                await self._unavailable_to(account, JID.parse(item))
        return None

    async def _write(self, account: JID, change: Change) -> None:
        try:
            await self.store.change(account, change, self.options.max_items)
        except ListFull as exc:
            raise StanzaError(StanzaCondition.RESOURCE_CONSTRAINT, str(exc)) from exc
        finally:
            self.cache.pop(account, None)

    def _push(self, account: JID, payload: Element) -> None:
        """§3.3/§3.4: every resource that asked for the list learns of the change."""
        for session in self.ctx.sessions.resources(account):
            if session.jid not in self.interested:
                continue
            push = Element("iq", ns.CLIENT, {"type": "set", "id": "block-push"})
            push.attrs["to"] = str(session.jid)
            push.append(payload.copy())
            session.deliver(push)

    async def _unavailable_to(self, account: JID, contact: JID) -> None:
        for session in self.ctx.sessions.resources(account):
            if session.is_available:
                el = Element(
                    "presence",
                    ns.CLIENT,
                    {"type": "unavailable", "from": str(session.jid), "to": str(contact)},
                )
                await self.ctx.router.route(Stanza(el, contact, session.jid))

    # --- enforcement ------------------------------------------------------------------
    @hook("message/bare", priority=100)
    @hook("message/full", priority=100)
    @hook("presence/bare", priority=100)
    @hook("presence/full", priority=100)
    @hook("iq/bare", priority=100)
    @hook("iq/full", priority=100)
    async def inbound(self, stanza: Stanza) -> bool:
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None:
            return False
        # Presence the server sends on a user's behalf (broadcasts, probe answers) never
        # reaches someone that user blocked.
        is_own = stanza.kind == "presence" and sender.domain == self.ctx.domain
        if is_own and await self._blocks(sender, to):
            return True
        if not await self._blocks(to, sender):
            return False
        if stanza.kind in ("message", "iq") and stanza.type not in ("error", "result"):
            if stanza.kind == "message" and stanza.type in ("groupchat", "headline"):
                return True
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)  # §3.5: as if absent
        return True  # presence and everything else: dropped silently

    @hook("pre-message", priority=100)
    @hook("pre-iq", priority=100)
    async def outbound(self, stanza: Stanza) -> bool:
        if not await self._blocks(stanza.from_, stanza.to):
            return False
        if stanza.kind == "presence":
            return True  # directed presence to a blocked entity is dropped
        blocked = Element("blocked", ns.BLOCKING_ERRORS)
        raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, extra=blocked)  # §3.5

    @hook("pre-presence", priority=100)
    async def outbound_presence(self, stanza: Stanza) -> bool:
        if stanza.type in ("unsubscribe", "unsubscribed"):
            return False  # cancelling a subscription is always allowed
        return await self.outbound(stanza)
