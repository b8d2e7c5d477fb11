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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from heron import ns
from heron.config import option
from heron.core.module import Module, ModuleContext, Xep, hook, iq_handler
from heron.core.registry import Avatar, Target
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.storage.db import Dialect, Migration, SqlStore
from heron.storage.owned import owned_table
from heron.xmlstream import (
    Limits,
    serialize,
)
from heron.xmlstream.element import Element
from heron.xmlstream.stored import read_stored

_COLUMNS: Final = """
    domain TEXT NOT NULL,
    username TEXT NOT NULL,
    xml TEXT NOT NULL,
    PRIMARY KEY (domain, username)"""


@dataclass(frozen=True, slots=True)
class VcardOptions:
    max_bytes: int = option(65536, min=1, max=Limits().max_stanza_bytes)
    """Largest vCard accepted, in bytes of serialized XML."""


class VcardStore(Protocol):
    """One serialized vCard per account (gone with the account)."""

    async def get(self, account: JID) -> str | None:
        """The account's vCard as stored, or None."""
        ...

    async def put(self, account: JID, xml: str) -> None:
        """Store the account's vCard, replacing the one before."""
        ...

    async def delete(self, account: JID) -> None:
        """Forget the account's vCard (no error when there was none)."""
        ...


class SqlVcardStore(SqlStore):
    """The ``vcards`` table, on either engine."""

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = owned_table(
        "vcard", "vcards", _COLUMNS, "domain, username, xml", " WITHOUT ROWID"
    )

    async def get(self, account: JID) -> str | None:
        xml = await self.db.fetchval(
            "SELECT xml FROM vcards WHERE domain = ? AND username = ?",
            account.domain,
            account.local,
        )
        return None if xml is None else str(xml)

    async def put(self, account: JID, xml: str) -> None:
        await self.db.execute(
            "INSERT INTO vcards (domain, username, xml) VALUES (?, ?, ?) "
            "ON CONFLICT (domain, username) DO UPDATE SET xml = excluded.xml",
            account.domain,
            account.local,
            xml,
        )

    async def delete(self, account: JID) -> None:
        await self.db.execute(
            "DELETE FROM vcards WHERE domain = ? AND username = ?", account.domain, account.local
        )


def photo_of(vcard: Element) -> Avatar | None:
    """The image in a vCard's PHOTO (XEP-0153 §3.1); None without one (or an EXTVAL only,
    or base64 that does not decode)."""
    photo = vcard.find("PHOTO", ns.VCARD)
    binval = photo.child_text("BINVAL", ns.VCARD) if photo is not None else None
    if photo is None or not binval:
        return None
    try:
        data = base64.b64decode("".join(binval.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    mime = (photo.child_text("TYPE", ns.VCARD) or "").strip() or "image/png"
    return Avatar(mime, data) if data else None


def with_photo(vcard: Element, avatar: Avatar | None) -> Element:
    """A copy of ``vcard`` whose PHOTO is ``avatar`` (none when None)."""
    copy = vcard.copy()
    copy.children = [c for c in copy.children if not (isinstance(c, Element) and c.tag == "PHOTO")]
    if avatar is not None:
        photo = copy.add("PHOTO", ns.VCARD)
        photo.add("TYPE", ns.VCARD, text=avatar.mime)
        photo.add("BINVAL", ns.VCARD, text=base64.b64encode(avatar.data).decode("ascii"))
    return copy


def _vcard(iq: Stanza) -> Element:
    payload = iq.payload
    if payload is None or payload.tag != "vCard" or payload.ns != ns.VCARD:
        raise StanzaError(StanzaCondition.BAD_REQUEST, "expected a <vCard xmlns='vcard-temp'/>")
    return payload


class VcardModule(Module):
    name = "vcard"
    description = "vcard-temp: each account stores a vCard that others may read."
    xeps = (
        Xep(54, "1.2", "complete"),
        Xep(153, "1.1", "complete", "the server puts the photo hash into presence"),
        Xep(398, "1.0.0", "complete", "both directions, with the pubsub module"),
    )
    disco_features = (ns.VCARD,)
    stores = (SqlVcardStore,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(VcardOptions)
        self.store: VcardStore = ctx.store(SqlVcardStore)
        # XEP-0153 hash of each account's PHOTO ("" for none), read when first needed.
        self.hashes: dict[JID, str] = {}

    async def start(self) -> None:
        registry = self.ctx.registry
        registry.vcard_avatar = self
        self.ctx.on_unload(self._withdraw_avatar)
        self.ctx.on_account_deleted(self.on_account_deleted)
        if registry.pep_avatar is not None:
            self.ctx.add_account_feature(ns.VCARD_CONVERSION)  # XEP-0398 §2

    def _withdraw_avatar(self) -> None:
        if self.ctx.registry.vcard_avatar is self:
            self.ctx.registry.vcard_avatar = None

    async def on_account_deleted(self, account: JID) -> None:
        """The row went with the account (a foreign key); the cached hash goes too."""
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
            stored = Element("vCard", ns.VCARD)
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
        update = stanza.element.find("x", ns.VCARD_UPDATE)
        photo = update.find("photo", ns.VCARD_UPDATE) if update is not None else None
        if photo is not None and not photo.text:
            return False  # the client is not ready to tell (XEP-0153 §4.2): left alone
        sha1 = await self._hash(sender.bare)
        if photo is not None and photo.text == sha1:
            return False
        if update is None:
            update = Element("x", ns.VCARD_UPDATE)
            stanza.element.append(update)
        update.children = [Element("photo", ns.VCARD_UPDATE, children=[sha1] if sha1 else [])]
        return False

    async def _load(self, jid: JID) -> Element | None:
        xml = await self.store.get(jid)
        return None if xml is None else read_stored(xml, "vCard", ns.VCARD)

    @iq_handler("get", ns.VCARD, Target.SELF)
    async def on_get_own(self, iq: Stanza) -> Element | None:
        _vcard(iq)
        stored = await self._load(iq.account())
        return stored if stored is not None else Element("vCard", ns.VCARD)

    @iq_handler("get", ns.VCARD, Target.BARE)
    async def on_get_other(self, iq: Stanza) -> Element | None:
        _vcard(iq)
        owner = iq.account()
        if not await self.ctx.accounts.exists(owner):
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)
        stored = await self._load(owner)
        if stored is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)
        return stored

    @iq_handler("set", ns.VCARD, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        vcard = _vcard(iq)
        xml = serialize(vcard)
        size = len(xml.encode())
        if size > self.options.max_bytes:
            raise StanzaError(
                StanzaCondition.NOT_ACCEPTABLE,
                f"vCard is {size} bytes; at most {self.options.max_bytes} are stored",
            )
        owner = iq.account()
        before = await self._hash(owner)
        await self.store.put(owner, xml)
        avatar = photo_of(vcard)
        self.hashes[owner] = avatar.sha1 if avatar is not None else ""
        pep = self.ctx.registry.pep_avatar
        if pep is not None and self.hashes[owner] != before:
            await pep.avatar_changed(owner, avatar)  # XEP-0398 §3.2, before the result
        return None

    @iq_handler("set", ns.VCARD, Target.BARE)
    async def on_set_other(self, iq: Stanza) -> Element | None:
        raise StanzaError(StanzaCondition.FORBIDDEN, "only the owner may change a vCard")
