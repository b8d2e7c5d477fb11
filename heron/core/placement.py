"""Where a room lives: the narrow service the room module uses to run one copy of each room
in a cluster (docs/cluster.md). Standalone, every room is here and nothing else happens.

In a cluster each room has one owner node: the node that holds its claim in the registry
(first claimed by the node rendezvous hashing picks among the live ones). Stanzas for a
room reach the owner over the bus; the owner keeps a snapshot of what only lives in memory
(occupants, a temporary room's configuration) in the registry, so that the node taking a
room over after its owner died finds its occupants there.
"""

from __future__ import annotations

from typing import Protocol

from heron.jid import JID
from heron.stanza import Stanza


class RoomKeeper(Protocol):
    """The room service, as the placement calls it back."""

    async def adopt_orphans(self, rooms: list[JID]) -> None:
        """A node died: take over these of its rooms (this node is their new owner), and
        drop the occupants whose sessions died with it from every room here."""

    async def restate(self) -> None:
        """The registry lost its data (a Redis restart): write every snapshot again."""

    async def forget(self) -> None:
        """This node was cut off and reaped: its rooms run elsewhere now; drop them
        without a word."""


class RoomPlacement(Protocol):
    @property
    def clustered(self) -> bool: ...

    async def locate(self, room: JID, *, forwarded: bool = False) -> str | None:
        """None when the room is (now) this node's; else the node to send its stanzas to.
        May claim the room for this node; does, when nobody holds it and another node
        sent the stanza here (``forwarded``: that node took this one for the owner)."""

    def forward(self, node: str, stanza: Stanza) -> None:
        """Hand a stanza for a room to its owner node, which routes it there."""

    async def release(self, room: JID) -> None:
        """The room is gone from this node (ended, destroyed): drop its claim and snapshot."""

    async def keep(self, room: JID, snapshot: dict[str, str]) -> None:
        """Replace the room's snapshot (names → serialized parts)."""

    async def hand_off(self, rooms: list[JID]) -> None:
        """This node stops: its rooms (snapshots written) move to the other nodes, and the
        stanzas still reaching it for them follow."""

    async def kept(self, room: JID) -> dict[str, str]:
        """The room's snapshot, empty when none was kept."""

    def watch(self, keeper: RoomKeeper) -> None:
        """Call ``keeper`` back when rooms lose their owner or the registry its data."""


class LocalPlacement:
    """A standalone server: every room is here."""

    @property
    def clustered(self) -> bool:
        return False

    async def locate(self, room: JID, *, forwarded: bool = False) -> str | None:
        return None

    def forward(self, node: str, stanza: Stanza) -> None:
        raise RuntimeError("a standalone server has no other node")

    async def release(self, room: JID) -> None:
        return None

    async def keep(self, room: JID, snapshot: dict[str, str]) -> None:
        return None

    async def hand_off(self, rooms: list[JID]) -> None:
        return None

    async def kept(self, room: JID) -> dict[str, str]:
        return {}

    def watch(self, keeper: RoomKeeper) -> None:
        return None
