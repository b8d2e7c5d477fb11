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


class VcardModule(Module):
    name = "vcard"
    description = "vcard-temp: each account stores a vCard that others may read."
    xeps = (Xep(54, "1.2", "complete"),)
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
        await self.store.put(_owner(iq), xml)
        return None

    @iq_handler("set", VCARD, Target.BARE)
    async def on_set_other(self, iq: Stanza) -> Element | None:
        raise StanzaError(StanzaCondition.FORBIDDEN, "only the owner may change a vCard")
