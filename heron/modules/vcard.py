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

Avatars (XEP-0153, XEP-0398): the vCard's ``PHOTO`` (``TYPE`` and base64 ``BINVAL``) is the
account's vCard avatar. A new PHOTO set here goes to the PEP avatar nodes through
``HostRegistry.pep_avatar`` (offered by the pubsub module), and an avatar published over PEP
comes back through ``avatar_changed`` into the stored vCard. Every available presence an
account sends carries ``<x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x>``
(XEP-0398 §4): added when absent or without ``<photo/>``, corrected when the client's hash is
not the stored image's; an empty ``<photo/>`` (a client not ready to tell) is left alone.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sqlite3
from dataclasses import dataclass
from typing import Final

from heron.config import ConfigError, build_options
from heron.core.module import Module, ModuleContext, Xep, hook, iq_handler
from heron.core.registry import Avatar, Target
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
VCARD_UPDATE: Final = "vcard-temp:x:update"
CONVERSION: Final = "urn:xmpp:pep-vcard-conversion:0"

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
        self._ctx = module.ctx

    async def get(self, jid: JID) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT xml FROM vcards WHERE domain = ? AND username = ?",
                (jid.domain, jid.local),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._ctx.sqlite().run(read)

    async def put(self, jid: JID, xml: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    "INSERT INTO vcards (domain, username, xml) VALUES (?, ?, ?) "
                    "ON CONFLICT (domain, username) DO UPDATE SET xml = excluded.xml",
                    (jid.domain, jid.local, xml),
                )

        await self._ctx.sqlite().run(write)


def photo_of(vcard: Element) -> Avatar | None:
    """The image in a vCard's PHOTO (XEP-0153 §3.1); None without one (or an EXTVAL only,
    or base64 that does not decode)."""
    photo = vcard.find("PHOTO", VCARD)
    binval = photo.child_text("BINVAL", VCARD) if photo is not None else None
    if photo is None or not binval:
        return None
    try:
        data = base64.b64decode("".join(binval.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    mime = (photo.child_text("TYPE", VCARD) or "").strip() or "image/png"
    return Avatar(mime, data) if data else None


def with_photo(vcard: Element, avatar: Avatar | None) -> Element:
    """A copy of ``vcard`` whose PHOTO is ``avatar`` (none when None)."""
    copy = vcard.copy()
    copy.children = [c for c in copy.children if not (isinstance(c, Element) and c.tag == "PHOTO")]
    if avatar is not None:
        photo = copy.add("PHOTO", VCARD)
        photo.add("TYPE", VCARD, text=avatar.mime)
        photo.add("BINVAL", VCARD, text=base64.b64encode(avatar.data).decode("ascii"))
    return copy


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
    xeps = (
        Xep(54, "1.2", "complete"),
        Xep(153, "1.1", "complete", "the server puts the photo hash into presence"),
        Xep(398, "1.0.0", "complete", "both directions, with the pubsub module"),
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
        # XEP-0153 hash of each account's PHOTO ("" for none), read when first needed.
        self.hashes: dict[JID, str] = {}

    async def start(self) -> None:
        await self.ctx.sqlite().migrate(MIGRATIONS)
        registry = self.ctx.registry
        registry.vcard_avatar = self
        registry.account_deleted.append(self.on_account_deleted)
        if registry.pep_avatar is not None:
            registry.account_features.add(CONVERSION)  # XEP-0398 §2

    async def stop(self) -> None:
        registry = self.ctx.registry
        if registry.vcard_avatar is self:
            registry.vcard_avatar = None
        registry.account_deleted.remove(self.on_account_deleted)
        registry.account_features.discard(CONVERSION)

    async def on_account_deleted(self, account: JID) -> None:
        self.hashes.pop(account, None)

    async def _hash(self, account: JID) -> str:
        found = self.hashes.get(account)
        if found is None:
            stored = await self._load(account)
            avatar = photo_of(stored) if stored is not None else None
            found = self.hashes[account] = avatar.sha1 if avatar is not None else ""
        return found

    async def avatar_changed(self, account: JID, avatar: Avatar | None) -> None:
        """XEP-0398 §3.1: an avatar published over PEP becomes the vCard's PHOTO."""
        stored = await self._load(account)
        if stored is None:
            if avatar is None:
                return
            stored = Element("vCard", VCARD)
        xml = serialize(with_photo(stored, avatar))
        if len(xml.encode()) > self.options.max_bytes:
            self.ctx.log.info("avatar of %s too large for its vCard; not copied", account)
            return
        await self.store.put(account, xml)
        self.hashes[account] = avatar.sha1 if avatar is not None else ""

    @hook("pre-presence", priority=30)
    async def add_photo_hash(self, stanza: Stanza) -> bool:
        """XEP-0398 §4: the photo hash in every available presence, directed ones too."""
        sender = stanza.from_
        if stanza.type != "available" or sender is None or sender.local is None:
            return False
        if sender.domain != self.ctx.domain:
            return False
        update = stanza.element.find("x", VCARD_UPDATE)
        photo = update.find("photo", VCARD_UPDATE) if update is not None else None
        if photo is not None and not photo.text:
            return False  # the client is not ready to tell (XEP-0153 §4.2): left alone
        sha1 = await self._hash(sender.bare)
        if photo is not None and photo.text == sha1:
            return False
        if update is None:
            update = Element("x", VCARD_UPDATE)
            stanza.element.append(update)
        update.children = [Element("photo", VCARD_UPDATE, children=[sha1] if sha1 else [])]
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
        if not await self.ctx.accounts.exists(owner):
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
        before = await self._hash(owner)
        await self.store.put(owner, xml)
        avatar = photo_of(vcard)
        self.hashes[owner] = avatar.sha1 if avatar is not None else ""
        pep = self.ctx.registry.pep_avatar
        if pep is not None and self.hashes[owner] != before:
            await pep.avatar_changed(owner, avatar)  # XEP-0398 §3.2, before the result
        return None

    @iq_handler("set", VCARD, Target.BARE)
    async def on_set_other(self, iq: Stanza) -> Element | None:
        raise StanzaError(StanzaCondition.FORBIDDEN, "only the owner may change a vCard")
