"""XEP-0054: vcard-temp: each account stores one vCard that other users may read.

The vCard is kept as serialized XML, one row per account. It is parsed again on every read
through a fresh ``StreamParser`` (with the limits every client stanza faces), so a row that
was damaged or written by other means yields "no vCard" and a warning, never a crash.

Choices where XEP-0054 (version 1.2) leaves room:

- reading one's own vCard when none is stored answers an empty ``<vCard/>`` (§3.1 allows it);
- reading another user's vCard when none is stored, or when the account does not exist,
  answers ``item-not-found`` (§3.2 lists it), the same in both cases so the answer does not
  reveal which accounts exist;
- only the owner may set a vCard: a set addressed to another account is ``forbidden``;
- a vCard larger than ``max_bytes`` (serialized) is refused with ``not-acceptable``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import sqlite3
from dataclasses import dataclass
from typing import Final

from heron.config import ConfigError, build_options
from heron.core.module import Module, ModuleContext, Xep, iq_handler
from heron.core.registry import Target
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.storage.sqlite import Migration
from heron.xmlstream import (
    Limits,
    serialize,
)
from heron.xmlstream.element import Element
from heron.xmlstream.stored import parse_stored as parse_stored_xml

UPDATE: Final = "vcard-temp:x:update"
VCARD: Final = "vcard-temp"

MIGRATIONS: Final = (
    Migration(
        "vcard",
        1,
        """
        CREATE TABLE vcards (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            xml TEXT NOT NULL,
            PRIMARY KEY (domain, username)
        ) WITHOUT ROWID;
        """,
    ),
)

log = logging.getLogger(__name__)


def parse_stored(xml: str, tag: str, namespace: str) -> Element | None:
    """A stored ``{namespace}tag`` element, re-checked; None (logged) when it is not one."""
    element = parse_stored_xml(xml, (tag, namespace))
    if element is None:
        log.warning("stored %s element is unreadable or not a single {%s}%s", tag, namespace, tag)
        return None
    return element


@dataclass(frozen=True, slots=True)
class VcardOptions:
    max_bytes: int = 65536
    """Largest vCard accepted, in bytes of serialized XML; at least 1, at most 262144."""


class VcardStore:
    """The ``vcards`` table: one serialized vCard per account."""

    def __init__(self, module: Module) -> None:
        self._server = module.ctx.server

    async def get(self, jid: JID) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT xml FROM vcards WHERE domain = ? AND username = ?",
                (jid.domain, jid.local),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._server.db_or_fail().run(read)

    async def put(self, jid: JID, xml: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    "INSERT INTO vcards (domain, username, xml) VALUES (?, ?, ?) "
                    "ON CONFLICT (domain, username) DO UPDATE SET xml = excluded.xml",
                    (jid.domain, jid.local, xml),
                )

        await self._server.db_or_fail().run(write)


def _vcard(iq: Stanza) -> Element:
    payload = iq.payload
    if payload is None or payload.tag != "vCard" or payload.ns != VCARD:
        raise StanzaError(StanzaCondition.BAD_REQUEST, "expected a <vCard xmlns='vcard-temp'/>")
    return payload


def _owner(iq: Stanza) -> JID:
    to = iq.to
    if to is None or to.local is None:
        raise StanzaError(StanzaCondition.BAD_REQUEST)
    return to.bare


def photo_hash(vcard: Element | None) -> str:
    """XEP-0153: the SHA-1 of the vCard's photo, "" when it has none."""
    photo = vcard.find("PHOTO", VCARD) if vcard is not None else None
    binval = photo.child_text("BINVAL", VCARD) if photo is not None else None
    if not binval:
        return ""
    try:
        data = base64.b64decode("".join(binval.split()), validate=True)
    except ValueError:
        return ""
    return hashlib.sha1(data).hexdigest()  # noqa: S324 (XEP-0153 names SHA-1)


class VcardModule(Module):
    """Also: the vCard is offered to conversions (registry.documents["vcard"]), and every
    available presence of an account carries its photo's hash (XEP-0153, as XEP-0398 §5
    asks of servers) unless the client sent an empty <photo/> itself."""

    name = "vcard"
    description = "vcard-temp: each account stores a vCard that others may read."
    xeps = (
        Xep(54, "1.2", "complete"),
        Xep(153, "1.1", "complete", "the server adds the photo hash to presence (XEP-0398)"),
    )
    disco_features = (VCARD,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        path = f'hosts."{ctx.domain}".modules.{self.name}'
        self.options = build_options(VcardOptions, ctx.options, path)
        if not 1 <= self.options.max_bytes <= Limits().max_stanza_bytes:
            raise ConfigError(
                f"{path}.max_bytes: must be between 1 and {Limits().max_stanza_bytes}"
            )
        self.store = VcardStore(self)

    async def start(self) -> None:
        await self.ctx.server.db_or_fail().migrate(MIGRATIONS)
        self.hashes: dict[JID, str] = {}  # account → photo hash, once looked up
        self.ctx.registry.documents["vcard"] = self
        self.ctx.registry.add_hook("pre-presence", self.stamp_presence, 30)

    async def stop(self) -> None:
        self.ctx.registry.documents.pop("vcard", None)
        self.ctx.registry.remove_hook("pre-presence", self.stamp_presence)

    # --- DocumentStore (for XEP-0398 conversion) ----------------------------------------
    async def get(self, account: JID, key: str) -> Element | None:
        return await self._load(account.bare)

    async def put(self, account: JID, key: str, element: Element) -> None:
        await self.store.put(account.bare, serialize(element))
        self.hashes[account.bare] = photo_hash(element)

    # --- XEP-0153 presence --------------------------------------------------------------
    async def stamp_presence(self, stanza: Stanza) -> bool:
        if stanza.type != "available" or stanza.from_ is None:
            return False
        el = stanza.element
        update = el.find("x", UPDATE)
        if update is not None and update.find("photo", UPDATE) is not None:
            return False  # the client said it itself (an empty <photo/>: not ready to tell)
        account = stanza.from_.bare
        if account not in self.hashes:
            if len(self.hashes) > 100_000:
                self.hashes.clear()
            self.hashes[account] = photo_hash(await self._load(account))
        if update is None:
            update = el.add("x", UPDATE)
        update.add("photo", UPDATE, text=self.hashes[account])
        return False

    async def _load(self, jid: JID) -> Element | None:
        xml = await self.store.get(jid)
        return None if xml is None else parse_stored(xml, "vCard", VCARD)

    @iq_handler("get", VCARD, Target.SELF)
    async def on_get_own(self, iq: Stanza) -> Element | None:
        _vcard(iq)
        stored = await self._load(_owner(iq))
        return stored if stored is not None else Element("vCard", VCARD)

    @iq_handler("get", VCARD, Target.BARE)
    async def on_get_other(self, iq: Stanza) -> Element | None:
        _vcard(iq)
        owner = _owner(iq)
        if not await self.ctx.server.accounts.exists(owner):
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)
        stored = await self._load(owner)
        if stored is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)
        return stored

    @iq_handler("set", VCARD, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        vcard = _vcard(iq)
        xml = serialize(vcard)
        size = len(xml.encode())
        if size > self.options.max_bytes:
            raise StanzaError(
                StanzaCondition.NOT_ACCEPTABLE,
                f"vCard is {size} bytes; at most {self.options.max_bytes} are stored",
            )
        owner = _owner(iq)
        await self.store.put(owner, xml)
        self.hashes[owner] = photo_hash(vcard)
        for listener in list(self.ctx.registry.document_listeners):
            await listener("vcard", owner, vcard)
        return None

    @iq_handler("set", VCARD, Target.BARE)
    async def on_set_other(self, iq: Stanza) -> Element | None:
        raise StanzaError(StanzaCondition.FORBIDDEN, "only the owner may change a vCard")
