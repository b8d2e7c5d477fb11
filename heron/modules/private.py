"""XEP-0049: Private XML Storage: an account keeps XML fragments only it can read back.

Fragments are stored per account and per (namespace, element name) of their root, as
serialized XML, and parsed again on every read (limits re-checked; a damaged row reads as absent).

Following XEP-0049 (version 1.2):

- a get carries exactly one child, usually empty; the answer holds the stored fragment, or the
  empty child as sent when nothing is stored. A get with several children is
  ``not-acceptable`` ("a client MUST NOT query for more than one namespace");
- a set may carry several children (the XEP allows it); each replaces what was stored under its
  namespace and name, all or none;
- a query with no child, or a child in a reserved namespace (``jabber:client``,
  ``jabber:server``, ``jabber:iq:private``) is ``not-acceptable``;
- a get or set addressed to another account is ``forbidden`` (type cancel, as in the XEP);
- a fragment larger than ``max_bytes`` (serialized) is refused with ``not-acceptable``.

Other modules read and write fragments through ``HostRegistry.private_xml`` (this module), and
hear of what clients store through ``HostRegistry.private_watcher``: the pubsub module keeps
``storage:bookmarks`` and the PEP bookmarks of XEP-0402 the same (XEP-0402 §5.3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from heron import ns
from heron.config import option
from heron.core.module import Module, ModuleContext, Xep, iq_handler
from heron.core.registry import Target
from heron.jid import JID
from heron.stanza import ErrorType, Stanza, StanzaCondition, StanzaError
from heron.storage.db import Dialect, Migration, SqlStore
from heron.storage.owned import owned_table
from heron.xmlstream import (
    Limits,
    serialize,
)
from heron.xmlstream.element import Element
from heron.xmlstream.stored import read_stored

RESERVED: Final = frozenset({ns.CLIENT, ns.SERVER, ns.PRIVATE})

_COLUMNS: Final = """
    domain TEXT NOT NULL,
    username TEXT NOT NULL,
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    xml TEXT NOT NULL,
    PRIMARY KEY (domain, username, ns, name)"""


@dataclass(frozen=True, slots=True)
class PrivateOptions:
    max_bytes: int = option(65536, min=1, max=Limits().max_stanza_bytes)
    """Largest fragment accepted, in bytes of serialized XML."""


class PrivateStore(Protocol):
    """Serialized fragments by account, namespace and element name (gone with the account)."""

    async def get(self, account: JID, namespace: str, name: str) -> str | None:
        """The fragment stored under ``{namespace}name``, or None."""
        ...

    async def put(self, account: JID, fragments: Sequence[tuple[str, str, str]]) -> None:
        """Store ``(namespace, name, xml)`` fragments, each replacing its own; all or none."""
        ...

    async def delete(self, account: JID, namespace: str, name: str) -> None:
        """Forget one fragment (no error when there was none)."""
        ...

    async def fragments(self, account: JID) -> list[tuple[str, str, str]]:
        """Every ``(namespace, name, xml)`` the account stored (export, XEP-0227)."""
        ...


class SqlPrivateStore(SqlStore):
    """The ``private_xml`` table, on either engine."""

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = owned_table(
        "private", "private_xml", _COLUMNS, "domain, username, ns, name, xml", " WITHOUT ROWID"
    )

    async def get(self, account: JID, namespace: str, name: str) -> str | None:
        xml = await self.db.fetchval(
            "SELECT xml FROM private_xml WHERE domain = ? AND username = ? AND ns = ? AND name = ?",
            account.domain,
            account.local,
            namespace,
            name,
        )
        return None if xml is None else str(xml)

    async def fragments(self, account: JID) -> list[tuple[str, str, str]]:
        rows = await self.db.fetch(
            "SELECT ns, name, xml FROM private_xml WHERE domain = ? AND username = ?"
            " ORDER BY ns, name",
            account.domain,
            account.local,
        )
        return [(str(n), str(name), str(xml)) for n, name, xml in rows]

    async def put(self, account: JID, fragments: Sequence[tuple[str, str, str]]) -> None:
        async with self.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO private_xml (domain, username, ns, name, xml) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (domain, username, ns, name) DO UPDATE SET xml = excluded.xml",
                [(account.domain, account.local, n, name, xml) for n, name, xml in fragments],
            )

    async def delete(self, account: JID, namespace: str, name: str) -> None:
        await self.db.execute(
            "DELETE FROM private_xml WHERE domain = ? AND username = ? AND ns = ? AND name = ?",
            account.domain,
            account.local,
            namespace,
            name,
        )


def _children(iq: Stanza) -> list[Element]:
    """The children of the ``<query/>``, checked: at least one, none in a reserved namespace."""
    payload = iq.payload
    if payload is None or payload.tag != "query" or payload.ns != ns.PRIVATE:
        raise StanzaError(StanzaCondition.BAD_REQUEST, "expected a jabber:iq:private <query/>")
    children = list(payload.elements())
    if not children:
        raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "the query needs a child element")
    for child in children:
        if child.ns in RESERVED or not child.ns:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, f"reserved namespace {child.ns!r}")
    return children


class PrivateModule(Module):
    name = "private"
    description = "Private XML storage: per-account XML fragments only their owner can read."
    xeps = (Xep(49, "1.2", "complete"),)
    disco_features = (ns.PRIVATE,)
    stores = (SqlPrivateStore,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(PrivateOptions)
        self.store: PrivateStore = ctx.store(SqlPrivateStore)

    async def start(self) -> None:
        self.ctx.registry.private_xml = self
        self.ctx.on_unload(self._withdraw)

    def _withdraw(self) -> None:
        if self.ctx.registry.private_xml is self:
            self.ctx.registry.private_xml = None

    # --- the service other modules use (HostRegistry.private_xml) ------------------------
    async def get_private(self, account: JID, namespace: str, name: str) -> Element | None:
        xml = await self.store.get(account, namespace, name)
        return None if xml is None else read_stored(xml, name, namespace)

    async def put_private(self, account: JID, element: Element) -> None:
        xml = serialize(element)
        if len(xml.encode()) > self.options.max_bytes:
            self.ctx.log.info("<%s/> of %s too large to store; not changed", element.tag, account)
            return
        await self.store.put(account, [(element.ns, element.tag, xml)])

    @iq_handler("get", ns.PRIVATE, Target.SELF)
    async def on_get(self, iq: Stanza) -> Element | None:
        children = _children(iq)
        if len(children) != 1:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "ask for one element at a time")
        wanted = children[0]
        xml = await self.store.get(iq.account(), wanted.ns, wanted.tag)
        stored = None if xml is None else read_stored(xml, wanted.tag, wanted.ns)
        found = stored if stored is not None else Element(wanted.tag, wanted.ns)
        return Element("query", ns.PRIVATE, children=[found])

    @iq_handler("set", ns.PRIVATE, Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        fragments: dict[tuple[str, str], str] = {}
        for child in _children(iq):
            xml = serialize(child)
            size = len(xml.encode())
            if size > self.options.max_bytes:
                raise StanzaError(
                    StanzaCondition.NOT_ACCEPTABLE,
                    f"<{child.tag}/> is {size} bytes; at most {self.options.max_bytes} are stored",
                )
            fragments[(child.ns, child.tag)] = xml  # the last of duplicates wins
        owner = iq.account()
        await self.store.put(owner, [(n, tag, xml) for (n, tag), xml in fragments.items()])
        watcher = self.ctx.registry.private_watcher
        if watcher is not None:  # mirrored before the result: then both sides agree
            for child in _children(iq):
                await watcher.private_changed(owner, child)
        return None

    @iq_handler("get", ns.PRIVATE, Target.BARE)
    @iq_handler("set", ns.PRIVATE, Target.BARE)
    async def on_other(self, iq: Stanza) -> Element | None:
        raise StanzaError(
            StanzaCondition.FORBIDDEN, "private data belongs to its owner", type=ErrorType.CANCEL
        )
