"""What modules register, per virtual host: IQ handlers, hooks, features, identities.

A module never mutates these tables directly; it declares (see ``heron.core.module``) and
the module manager applies and withdraws the declarations.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from heron.jid import JID
from heron.stanza import Stanza
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from heron.core.sessions import Session


class Target(enum.Flag):
    """Where an IQ is addressed, from the point of view of the sender (Prosody's split)."""

    HOST = enum.auto()  # the server's domain itself
    SELF = enum.auto()  # the sender's own bare JID (or no 'to' at all)
    BARE = enum.auto()  # another account's bare JID
    FULL = enum.auto()  # a full JID: normally forwarded to that client


IqHandler = Callable[[Stanza], Awaitable[Element | None]]
"""Returns the payload of the result (None: an empty result) or raises StanzaError.

A handler that must send something after its result (roster pushes after an empty roster
result) delivers the result itself and sets ``stanza.meta["answered"]``.
"""

Hook = Callable[[Stanza], Awaitable[bool]]
"""Returns True when it consumed the stanza; later hooks are then not run."""

PreauthHandler = Callable[[Stanza, str, dict[str, object]], Awaitable[Element | None]]
"""An IQ before authentication (XEP-0077 registration); gets the peer's IP address and the
stream's pre-login state (what earlier IQs on the same stream established, e.g. a token)."""

FeatureProvider = Callable[[], Element | None]

NonzaHandler = Callable[["Session", Element], Awaitable[None]]
"""A top-level element that is not a stanza (XEP-0352's <active/>) from a bound session."""


class ArchiveService(Protocol):
    """The message archive (XEP-0313), offered by the mam module to other parts (MUC rooms)."""

    async def archive(self, owner: JID, other: JID, element: Element) -> str:
        """Keep ``element`` in ``owner``'s archive; returns its archive (stanza) id."""
        ...

    async def answer(self, owner: JID, iq: Stanza) -> Element:
        """Answer a MAM query on ``owner``'s archive: results to the asker, then <fin/>."""
        ...

    async def lookup(self, owner: JID, archive_id: str) -> Element | None:
        """The stanza kept in ``owner``'s archive under ``archive_id``, if any."""
        ...

    async def replace(self, owner: JID, archive_id: str, element: Element) -> bool:
        """Put ``element`` in place of an archived stanza (a moderation tombstone)."""
        ...


@dataclass(frozen=True, slots=True)
class Contact:
    """``other``'s standing in an account's roster (RFC 6121 §2.1.2)."""

    subscription: str = "none"  # none, to, from or both
    in_roster: bool = False
    groups: tuple[str, ...] = ()


class ContactDirectory(Protocol):
    """Who is a contact of an account: provided by the roster, asked by spam controls and
    by PEP access models (XEP-0163 §4.1: presence and roster)."""

    async def is_contact(self, account: JID, other: JID) -> bool:
        """True when ``other`` is in ``account``'s roster or has a subscription either way."""
        ...

    async def contact(self, account: JID, other: JID) -> Contact:
        """``other``'s roster entry in ``account``'s roster (subscription none if absent)."""
        ...

    async def roster_items(self, account: JID) -> list[Element]:
        """The account's roster as RFC 6121 ``<item/>`` elements (XEP-0133 get-user-roster,
        export)."""
        ...


@dataclass(frozen=True, slots=True)
class Avatar:
    """An account's avatar image: XEP-0084 data, or the PHOTO of its vCard (XEP-0153)."""

    mime: str
    data: bytes

    @property
    def sha1(self) -> str:
        """The id of XEP-0084 §4.2 and the hash of XEP-0153 §4.3: hex SHA-1 of the image."""
        return hashlib.sha1(self.data, usedforsecurity=False).hexdigest()


class AvatarSync(Protocol):
    """One side of XEP-0398 (avatars kept the same in PEP and in the vCard): told when the
    avatar changed on the other side; ``None`` means the account has no avatar any more.
    The receiver stores it without telling the other side back."""

    async def avatar_changed(self, account: JID, avatar: Avatar | None) -> None: ...


class PrivateXml(Protocol):
    """Private XML storage (XEP-0049), offered by the private module."""

    async def get_private(self, account: JID, namespace: str, name: str) -> Element | None:
        """The fragment stored under ``{namespace}name``, if any."""
        ...

    async def put_private(self, account: JID, element: Element) -> None:
        """Store ``element`` under its name and namespace, without telling any watcher."""
        ...


class PrivateXmlWatcher(Protocol):
    """Told when an account's client stored a fragment in private XML storage (XEP-0411 and
    XEP-0402 §5.3: the pubsub module mirrors ``storage:bookmarks`` into PEP)."""

    async def private_changed(self, account: JID, element: Element) -> None: ...


class AccountItems(Protocol):
    """The disco#items of an account's bare JID (XEP-0030 §4; XEP-0163 §6.2: its PEP nodes)."""

    async def account_items(self, account: JID, asker: JID) -> list[Element]:
        """``<item/>`` elements (disco#items namespace) ``asker`` may see; none for an
        account that does not exist, so that the answer tells nothing about existence."""
        ...


class DiscoNodes(Protocol):
    """Service discovery nodes of the host (XEP-0030 §3.2, §4.2), such as XEP-0050's
    command list: a provider answers the nodes it knows and None for the others."""

    async def node_info(self, node: str, asker: JID) -> Element | None:
        """The disco#info ``<query/>`` of ``node`` as ``asker`` may see it, else None."""
        ...

    async def node_items(self, node: str, asker: JID) -> Element | None:
        """The disco#items ``<query/>`` of ``node`` as ``asker`` may see it, else None."""
        ...


AccountDeleted = Callable[[JID], Awaitable[None]]
"""Called after an account was removed, to drop what modules keep for it."""


@dataclass(frozen=True, slots=True)
class Identity:
    category: str
    type: str
    name: str = ""


@dataclass(slots=True)
class _HookEntry:
    priority: int
    hook: Hook


@dataclass(slots=True)
class HostRegistry:
    """The tables of one virtual host."""

    domain: str
    iq_handlers: dict[tuple[str, str], list[tuple[Target, IqHandler]]] = field(default_factory=dict)
    preauth_iq: dict[tuple[str, str], PreauthHandler] = field(default_factory=dict)
    hooks: dict[str, list[_HookEntry]] = field(default_factory=dict)
    features: dict[str, int] = field(default_factory=dict)  # disco feature → refcount
    identities: list[Identity] = field(default_factory=list)
    preauth_features: list[FeatureProvider] = field(default_factory=list)
    postauth_features: list[FeatureProvider] = field(default_factory=list)
    contacts: ContactDirectory | None = None  # set by the roster module while it runs
    archive: ArchiveService | None = None  # set by the mam module while it runs
    # A service whose addresses are entities of their own (rooms): the router's own errors
    # for them name the addressed entity's bare JID in `by` (RFC 6120 §8.3.2).
    errors_by_address: bool = False
    nonzas: dict[str, NonzaHandler] = field(default_factory=dict)  # namespace → handler
    account_features: set[str] = field(default_factory=set)  # disco#info of an account
    items: dict[str, str] = field(default_factory=dict)  # disco#items of the host: JID → name
    account_identities: list[Identity] = field(default_factory=list)  # beside account/registered
    account_items: AccountItems | None = None  # set by the pubsub module (PEP nodes)
    vcard_avatar: AvatarSync | None = None  # set by the vcard module
    pep_avatar: AvatarSync | None = None  # set by the pubsub module
    private_xml: PrivateXml | None = None  # set by the private module
    private_watcher: PrivateXmlWatcher | None = None  # set by the pubsub module
    account_deleted: list[AccountDeleted] = field(default_factory=list)
    disco_nodes: list[DiscoNodes] = field(default_factory=list)  # asked by the disco module

    async def forget_account(self, account: JID) -> None:
        """Run every ``account_deleted`` callback (after the account itself is gone)."""
        for callback in list(self.account_deleted):
            await callback(account)

    # --- IQ ---------------------------------------------------------------------------
    def add_iq_handler(self, type_: str, ns: str, target: Target, handler: IqHandler) -> None:
        self.iq_handlers.setdefault((type_, ns), []).append((target, handler))

    def remove_iq_handler(self, type_: str, ns: str, handler: IqHandler) -> None:
        entries = self.iq_handlers.get((type_, ns), [])
        entries[:] = [e for e in entries if e[1] != handler]

    def find_iq_handler(self, type_: str, ns: str, target: Target) -> IqHandler | None:
        for mask, handler in self.iq_handlers.get((type_, ns), ()):
            if target & mask:
                return handler
        return None

    # --- hooks ------------------------------------------------------------------------
    def add_hook(self, event: str, hook: Hook, priority: int = 0) -> None:
        """Higher priority runs first; equal priorities run in registration order."""
        entries = self.hooks.setdefault(event, [])
        entries.append(_HookEntry(priority, hook))
        entries.sort(key=lambda e: -e.priority)

    def remove_hook(self, event: str, hook: Hook) -> None:
        entries = self.hooks.get(event, [])
        entries[:] = [e for e in entries if e.hook != hook]

    async def run_hooks(self, event: str, stanza: Stanza) -> bool:
        for entry in self.hooks.get(event, ()):
            if await entry.hook(stanza):
                return True
        return False

    # --- disco ------------------------------------------------------------------------
    def add_feature(self, feature: str) -> None:
        self.features[feature] = self.features.get(feature, 0) + 1

    def remove_feature(self, feature: str) -> None:
        count = self.features.get(feature, 0) - 1
        if count <= 0:
            self.features.pop(feature, None)
        else:
            self.features[feature] = count
