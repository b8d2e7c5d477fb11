"""XEP-0313 Message Archive Management for user accounts (``urn:xmpp:mam:2``).

Chat and normal messages with a body, a XEP-0334 ``<store/>`` hint or a XEP-0353 call
signal (``propose``, ``proceed``, ``reject``, ``retract``, ``finish``...) are archived for
the local account that sends or receives them, unless hinted ``<no-store/>`` or
``<no-permanent-store/>`` (per the account's preference: always, never, or only with
roster contacts).
A received message gets a XEP-0359 ``<stanza-id/>`` naming its archive id before it is
delivered, so every device can refer to it. Queries filter by ``with``, ``start``, ``end``,
``before-id``/``after-id`` and ``ids``, page with XEP-0059 (``max``, ``after``, ``before``,
forwards or backwards), and answer results before the ``<fin/>``. ``#extended`` metadata
gives the first and last archived message. Archives keep ``max_days`` days.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from dataclasses import dataclass
from typing import Final

from heron import ns, timestamps
from heron.config import ConfigError, build_options
from heron.core.module import Module, Xep, hook, iq_handler
from heron.core.registry import Target
from heron.jid import JID, InvalidJID
from heron.modules.mam.store import ArchiveRow, ArchiveStore, Query, SqlArchiveStore, UnknownId
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream import prepare, serialize
from heron.xmlstream.element import Element
from heron.xmlstream.stored import parse_stored

log = logging.getLogger(__name__)
MAM: Final = "urn:xmpp:mam:2"
MAM_EXTENDED: Final = "urn:xmpp:mam:2#extended"
SID: Final = "urn:xmpp:sid:0"
RSM: Final = "http://jabber.org/protocol/rsm"
DATA: Final = "jabber:x:data"
MODES: Final = ("always", "never", "roster")


@dataclass(frozen=True, slots=True)
class MamOptions:
    default: str = "always"
    max_days: float = 365.0
    max_page: int = 250


def _stamp(at: float) -> str:
    return timestamps.stamp(at, microseconds=True)


def _parse_time(value: str) -> float:
    parsed = timestamps.parse(value)
    if parsed is None:
        raise StanzaError(StanzaCondition.BAD_REQUEST, f"bad time {value!r}")
    return parsed


def eligible(stanza: Stanza) -> bool:
    """XEP-0313 §6.1 (chat/normal with a body) with XEP-0334's hints: <store/> archives a
    message without a body (XEP-0353 call signals carry it so every device sees the call)."""
    el = stanza.element
    if stanza.type not in ("chat", "normal"):
        return False
    wanted = el.find("body", ns.CLIENT) is not None
    for child in el.elements():
        if child.ns == ns.HINTS:
            if child.tag in ("no-store", "no-permanent-store"):
                return False
            wanted = wanted or child.tag == "store"
        elif child.ns == ns.JINGLE_MESSAGE:
            wanted = True
    return wanted


def parse_query(query: Element, max_page: int) -> Query:
    q = Query()
    form = query.find("x", DATA)
    for field in form.find_all("field", DATA) if form is not None else []:
        var = field.attrs.get("var", "")
        values = [v.text for v in field.find_all("value", DATA)]
        value = values[0] if values else ""
        if var == "FORM_TYPE":
            if value != MAM:
                raise StanzaError(StanzaCondition.BAD_REQUEST, "FORM_TYPE must be urn:xmpp:mam:2")
        elif var == "with":
            try:
                q.with_jid = str(JID.parse(value).bare)
            except InvalidJID as exc:
                raise StanzaError(StanzaCondition.JID_MALFORMED) from exc
        elif var == "start":
            q.start = _parse_time(value)
        elif var == "end":
            q.end = _parse_time(value)
        elif var == "after-id":
            q.after_id = value
        elif var == "before-id":
            q.before_id = value
        elif var == "ids":
            q.ids = tuple(values)
        elif var:
            raise StanzaError(StanzaCondition.FEATURE_NOT_IMPLEMENTED, f"no field {var!r}")
    rsm = query.find("set", RSM)
    if rsm is not None:
        limit = rsm.find("max", RSM)
        if limit is not None:
            try:
                q.max = max(0, min(int(limit.text), max_page))
            except ValueError as exc:
                raise StanzaError(StanzaCondition.BAD_REQUEST, "max must be a number") from exc
        after, before = rsm.find("after", RSM), rsm.find("before", RSM)
        if after is not None and after.text:
            q.after_id = after.text
        if before is not None:
            q.backwards = True
            if before.text:
                q.before_id = before.text
    return q


class MamModule(Module):
    name = "mam"
    description = "Message archive: every device can fetch the history, page by page"
    xeps = (
        Xep(313, "1.1.1", "complete", "user archives, disco on the account; rooms via muc"),
        Xep(359, "0.7.0", "complete", "stanza-id on archived messages"),
        Xep(59, "1.0", "complete", "result set paging for archive queries"),
        Xep(441, "0.2.0", "complete", "the default mode and the always/never JID lists"),
    )
    disco_features = (MAM, MAM_EXTENDED, SID)
    stores = (SqlArchiveStore,)

    async def start(self) -> None:
        path = f'hosts."{self.ctx.domain}".modules.mam'
        self.options = build_options(MamOptions, self.ctx.options, path)
        if self.options.default not in MODES:
            raise ConfigError(f"{path}.default: one of {', '.join(MODES)}")
        self.store: ArchiveStore = self.ctx.store(SqlArchiveStore)
        self.prefs: dict[JID, Prefs] = {}
        self._loading: dict[JID, asyncio.Future[Prefs]] = {}
        self._expiry = asyncio.create_task(self._expire_forever())
        self.ctx.registry.archive = self
        self.ctx.registry.account_deleted.append(self.on_account_deleted)
        # XEP-0313 §7: clients ask the account's bare JID whether it has an archive.
        self.ctx.registry.account_features.update((MAM, MAM_EXTENDED))

    async def stop(self) -> None:
        self.ctx.registry.account_deleted.remove(self.on_account_deleted)
        self.ctx.registry.account_features.difference_update((MAM, MAM_EXTENDED))
        self._expiry.cancel()
        await self.store.close()  # queued rows are written: a stop loses nothing
        if self.ctx.registry.archive is self:
            self.ctx.registry.archive = None

    async def on_account_deleted(self, account: JID) -> None:
        """The account's archive and preferences go with it."""
        self.prefs.pop(account.bare, None)
        await self.store.forget(account.domain, account.local or "")

    async def flush(self) -> None:
        """Write every queued row."""
        await self.store.flush()

    # --- ArchiveService (for rooms) -----------------------------------------------------
    async def archive(self, owner: JID, other: JID, element: Element) -> str:
        archive_id = _new_id()
        await self._archive(owner, other, element, archive_id)
        return archive_id

    async def answer(self, owner: JID, iq: Stanza) -> Element:
        payload = iq.payload
        if payload is None or payload.tag != "query":
            raise StanzaError(StanzaCondition.BAD_REQUEST)
        return await self._answer(owner, iq, payload)

    async def lookup(self, owner: JID, archive_id: str) -> Element | None:
        xml = await self.store.lookup(owner.domain, owner.local or "", archive_id)
        return None if xml is None else parse_stored(xml, ("message", ns.CLIENT))

    async def replace(self, owner: JID, archive_id: str, element: Element) -> bool:
        xml = serialize(element, ns.CLIENT)
        return await self.store.replace(owner.domain, owner.local or "", archive_id, xml)

    # --- archiving --------------------------------------------------------------------
    async def _prefs(self, account: JID) -> Prefs:
        cached = self.prefs.get(account)
        if cached is not None:
            return cached
        # The messages of an account that arrive before its preferences are read share
        # one lookup (200 accounts starting to chat at once were 400 statements per second).
        loading = self._loading.get(account)
        if loading is None:
            loading = self._loading[account] = asyncio.ensure_future(self._load_prefs(account))
            loading.add_done_callback(lambda _: self._loading.pop(account, None))
        return await asyncio.shield(loading)

    async def _load_prefs(self, account: JID) -> Prefs:
        local = account.local or ""
        mode = await self.store.mode(account.domain, local) or self.options.default
        always, never = await self.store.rules(account.domain, local)
        # Preferences set meanwhile (set_prefs) are newer than what was read: they stay.
        return self.prefs.setdefault(account, Prefs(mode, tuple(always), tuple(never)))

    async def _wanted(self, account: JID, other: JID) -> bool:
        """XEP-0441: a JID in <never/> is never archived, one in <always/> always (a bare
        JID stands for all its resources); anyone else by the default mode."""
        prefs = await self._prefs(account)
        if prefs.mode == "always" and not prefs.never:
            return True  # the usual case, without building the address sets
        addresses = {str(other), str(other.bare)}
        if addresses & set(prefs.never):
            return False
        mode = prefs.mode
        if mode == "always" or addresses & set(prefs.always):
            return True
        contacts = self.ctx.registry.contacts
        return (
            mode == "roster" and contacts is not None and await contacts.is_contact(account, other)
        )

    async def _archive(self, account: JID, other: JID, element: Element, archive_id: str) -> None:
        """Queue a row; a batch is written within FLUSH_AFTER_S (or at FLUSH_ROWS at once).
        A crash can lose at most that window of archive rows; the messages themselves were
        already routed. Every read of the archive flushes first.

        The children's XML is kept on the element (serializer.prepare): the recipient's copy
        (the same children and a stanza-id) then serializes only the stanza-id, and the
        delivery to the recipient reuses it all, so a message's body is serialized once."""
        prepare(element, ns.CLIENT)
        xml = serialize(element, ns.CLIENT)
        row = ArchiveRow(
            archive_id, account.domain, account.local or "", str(other.bare), time.time(), xml
        )
        await self.store.append(row)

    async def expire(self, now: float | None = None) -> None:
        """Forget what is older than max_days (every hour, and at start)."""
        cutoff = (time.time() if now is None else now) - self.options.max_days * 86400
        await self.store.expire(cutoff)

    async def _expire_forever(self) -> None:
        while True:
            try:
                await self.expire()
            except Exception:
                log.exception("could not expire old archive entries")
            await asyncio.sleep(3600)

    @hook("message/bare", priority=5)
    @hook("message/full", priority=5)
    async def incoming(self, stanza: Stanza) -> bool:
        """Archived for the recipient (if the account exists) with a stanza-id, then routed."""
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None or not eligible(stanza):
            return False
        if stanza.meta.get("redelivered"):
            return False  # archived when it first arrived (XEP-0198 hand-back)
        account = to.bare
        if not await self._wanted(account, sender) or not await self.ctx.accounts.exists(account):
            return False
        el = stanza.element
        by = str(account)
        for old in [c for c in el.elements() if c.ns == SID and c.tag == "stanza-id"]:
            if old.attrs.get("by") == by:
                el.children.remove(old)  # XEP-0359 §5: never trust one claiming to be ours
        archive_id = _new_id()
        el.add("stanza-id", SID, {"by": by, "id": archive_id})
        await self._archive(account, sender, el, archive_id)
        return False

    @hook("pre-message", priority=5)
    async def outgoing(self, stanza: Stanza) -> bool:
        """Archived for the sender (the copy every other device can fetch later)."""
        sender, to = stanza.from_, stanza.to
        if sender is None or to is None or sender.local is None or not eligible(stanza):
            return False
        account = sender.bare
        if to.bare == account or not await self._wanted(account, to):
            return False
        await self._archive(account, to, stanza.element, _new_id())
        return False

    # --- queries ----------------------------------------------------------------------
    @iq_handler("set", MAM, Target.SELF)
    async def on_query(self, iq: Stanza) -> Element | None:
        assert iq.from_ is not None
        payload = iq.payload
        if payload is not None and payload.tag == "prefs":
            return await self.set_prefs(iq, payload)
        if payload is None or payload.tag != "query":
            raise StanzaError(StanzaCondition.BAD_REQUEST)
        return await self._answer(iq.from_.bare, iq, payload)

    async def _answer(self, owner: JID, iq: Stanza, payload: Element) -> Element:
        """Results to the asker (from the archive's JID when it is not theirs), then fin."""
        assert iq.from_ is not None
        q = parse_query(payload, self.options.max_page)
        try:
            page = await self.store.query(owner.domain, owner.local or "", q)
        except UnknownId as exc:
            raise StanzaError(
                StanzaCondition.ITEM_NOT_FOUND, f"no archived message {exc.args[0]}"
            ) from exc
        rows, complete, count = page.rows, page.complete, page.count
        session = self.ctx.sessions.get(iq.from_)
        queryid = payload.attrs.get("queryid")
        for archive_id, at, xml in rows:
            original = parse_stored(xml)
            if original is None or session is None:
                continue
            result_msg = Element("message", ns.CLIENT, {"to": str(iq.from_)})
            if owner != iq.from_.bare:
                result_msg.attrs["from"] = str(owner)
            result = result_msg.add("result", MAM, {"id": archive_id})
            if queryid:
                result.attrs["queryid"] = queryid
            forwarded = result.add("forwarded", ns.FORWARD)
            forwarded.add("delay", ns.DELAY, {"stamp": _stamp(at)})
            forwarded.append(original)
            session.deliver(result_msg)
        fin = Element("fin", MAM)
        if complete:
            fin.attrs["complete"] = "true"
        rsm = fin.add("set", RSM)
        if rows:
            rsm.add("first", RSM, text=rows[0][0])
            rsm.add("last", RSM, text=rows[-1][0])
        if count is not None:
            rsm.add("count", RSM, text=str(count))
        return fin

    @iq_handler("get", MAM, Target.SELF)
    async def on_get(self, iq: Stanza) -> Element | None:
        """The query form (§4.1.1), the preferences (§7) or the metadata (#extended)."""
        assert iq.from_ is not None
        payload = iq.payload
        assert payload is not None
        account = iq.from_.bare
        if payload.tag == "query":
            query = Element("query", MAM)
            form = query.add("x", DATA, {"type": "form"})
            form.add("field", DATA, {"var": "FORM_TYPE", "type": "hidden"}).add(
                "value", DATA, text=MAM
            )
            for var, type_ in (
                ("with", "jid-single"),
                ("start", "text-single"),
                ("end", "text-single"),
                ("after-id", "text-single"),
                ("before-id", "text-single"),
                ("ids", "text-multi"),
            ):
                form.add("field", DATA, {"var": var, "type": type_})
            return query
        if payload.tag == "prefs":
            return (await self._prefs(account)).element()
        if payload.tag == "metadata":
            ends = await self.store.ends(account.domain, account.local or "")
            metadata = Element("metadata", MAM)
            for tag, row in zip(("start", "end"), ends, strict=True):
                if row is not None:
                    metadata.add(tag, MAM, {"id": row[0], "timestamp": _stamp(row[1])})
            return metadata
        raise StanzaError(StanzaCondition.FEATURE_NOT_IMPLEMENTED)

    async def set_prefs(self, iq: Stanza, prefs: Element) -> Element:
        assert iq.from_ is not None
        account = iq.from_.bare
        mode = prefs.attrs.get("default", "")
        if mode not in MODES:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "default: always, never or roster")
        never = _jids(prefs.find("never", MAM))
        always = tuple(j for j in _jids(prefs.find("always", MAM)) if j not in never)
        local = account.local or ""
        await self.store.set_mode(account.domain, local, mode)
        await self.store.set_rules(account.domain, local, always, never)
        self.prefs[account] = stored = Prefs(mode, always, never)
        return stored.element()


@dataclass(frozen=True, slots=True)
class Prefs:
    """An account's archiving preferences (XEP-0441, XEP-0313 §6 before it)."""

    mode: str
    always: tuple[str, ...] = ()
    never: tuple[str, ...] = ()

    def element(self) -> Element:
        """<always/> and <never/> are always there, empty when empty."""
        prefs = Element("prefs", MAM, {"default": self.mode})
        for tag, jids in (("always", self.always), ("never", self.never)):
            rule = prefs.add(tag, MAM)
            for jid in jids:
                rule.add("jid", MAM, text=jid)
        return prefs


MAX_RULE_JIDS: Final = 1000


def _jids(rule: Element | None) -> tuple[str, ...]:
    """The JIDs of <always/> or <never/>, normalised (RFC 7622), sorted, without repeats."""
    if rule is None:
        return ()
    found: set[str] = set()
    for el in rule.find_all("jid", MAM):
        try:
            found.add(str(JID.parse(el.text.strip())))
        except InvalidJID as exc:
            raise StanzaError(StanzaCondition.JID_MALFORMED, "not a JID in the rules") from exc
    if len(found) > MAX_RULE_JIDS:
        raise StanzaError(StanzaCondition.POLICY_VIOLATION, "too many JIDs in the rules")
    return tuple(sorted(found))


_SEQUENCE = itertools.count()


def _new_id() -> str:
    """Unique, and increasing with time, so that new rows land at the end of the archive id
    index instead of at random pages (random ids made each insert several times dearer as
    the archive grew). Not secret: reading an archive needs its owner's login anyway."""
    micros = time.time_ns() // 1000
    # random, not secrets: no system call per message (random reseeds in forked workers).
    return f"{micros:013x}{next(_SEQUENCE) % 0x1000:03x}{random.getrandbits(16):04x}"
