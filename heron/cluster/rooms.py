"""One owner node per room, for the room module (`heron.core.placement.RoomPlacement`).

A room's owner is the node named by its claim in Redis (``room:<jid>``). A claim is as
good as its node's lease: a claim naming a node whose lease is gone can be taken by
another node, and the reaper of a dead node removes its claims. Where nobody holds a valid
claim, rendezvous hashing over the live nodes picks the node that claims it: every node
computes the same choice from the same set of live nodes, so they agree without talking,
and a node's death moves only its own rooms.

Other nodes remember the owner they found and send the room's stanzas straight there; an
owner that learns it is not (any more) the owner forwards again, at most three hops.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from heron.cluster.directory import RedisDirectory
from heron.core.placement import RoomKeeper
from heron.jid import JID
from heron.stanza import Stanza

log = logging.getLogger(__name__)

# KEYS: the room's claim, this node's rooms; ARGV: node, lease prefix, rooms prefix, room.
# Claims the room unless a node with a live lease holds it; returns the holder.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. cur) == 1 then return cur end
if cur and cur ~= ARGV[1] then redis.call('SREM', ARGV[3] .. cur, ARGV[4]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[4])
return ARGV[1]
"""

# KEYS: the room's claim, node's rooms, snapshot; ARGV: node, room. Only the holder's claim
# goes; the snapshot goes with it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('DEL', KEYS[3])
end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: the room's claim, node's rooms; ARGV: node, room. The claim goes, the snapshot stays
# (for the node that takes the room over).
_DISOWN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

MAX_HOPS = 3


def rendezvous(room: JID, nodes: set[str]) -> str:
    """The node with the highest hash of (node, room): the same answer on every node."""
    key = str(room).encode()
    return max(sorted(nodes), key=lambda n: hashlib.sha256(n.encode() + b"\0" + key).digest())


class ClusterRooms:
    def __init__(
        self,
        directory: RedisDirectory,
        send: Callable[[str, Stanza, int], None],
        live: Callable[[], set[str]],
        moved: Callable[[list[JID]], None],
    ) -> None:
        self.directory = directory
        self.redis: Any = directory.redis
        self.keys = directory.keys
        self.name = directory.node
        self._send = send
        self._live = live
        self._moved = moved
        self.handed: list[JID] = []  # rooms handed off as this node stops
        self.leaving = False
        self.mine: set[JID] = set()  # rooms this node claimed
        self.owners: dict[JID, str] = {}  # rooms of other nodes, as last found
        self.keeper: RoomKeeper | None = None
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)
        self._disown = self.redis.register_script(_DISOWN)

    @property
    def clustered(self) -> bool:
        return True

    def watch(self, keeper: RoomKeeper) -> None:
        self.keeper = keeper

    # --- where a room is ----------------------------------------------------------------
    async def locate(self, room: JID, *, forwarded: bool = False) -> str | None:
        if self.leaving:
            return self.successor(room)
        if room in self.mine:
            return None
        live = self._live()
        cached = self.owners.get(room)
        if cached is not None and cached in live and not forwarded:
            return cached
        chosen = rendezvous(room, live)
        if chosen == self.name or forwarded:
            # A node sent it here, taking this one for the owner (it was, or was chosen):
            # this node claims the room unless a live node holds it, so a stanza makes at
            # most two hops however stale the sender's memory.
            holder = await self.claim(room)
        else:
            raw = await self.redis.get(self.keys.room(str(room)))
            holder = raw.decode() if isinstance(raw, bytes) else raw
            if holder == self.name:
                holder = await self.claim(room)  # this node's claim from before a restart
            elif holder is None or holder not in live:
                return chosen  # the chosen node claims it when the stanza arrives
        if holder == self.name:
            return None
        self.owners[room] = holder
        return holder

    async def claim(self, room: JID) -> str:
        raw = await self._claim(
            keys=[self.keys.room(str(room)), self.keys.rooms(self.name)],
            args=[self.name, self.keys.lease(""), self.keys.rooms(""), str(room)],
        )
        holder = raw.decode() if isinstance(raw, bytes) else str(raw)
        if holder == self.name:
            self.mine.add(room)
            self.owners.pop(room, None)
        return holder

    def successor(self, room: JID) -> str | None:
        """Where a room goes when this node leaves (None: no other node is left)."""
        others = self._live() - {self.name}
        return rendezvous(room, others) if others else None

    async def hand_off(self, rooms: list[JID]) -> None:
        self.leaving = True
        for room in rooms:
            await self._disown(
                keys=[self.keys.room(str(room)), self.keys.rooms(self.name)],
                args=[self.name, str(room)],
            )
            self.mine.discard(room)
        self.handed = list(rooms)
        self._moved(self.handed)

    def forward(self, node: str, stanza: Stanza) -> None:
        hops = stanza.meta.get("hops", 0)
        self._send(node, stanza, hops if isinstance(hops, int) else MAX_HOPS)

    async def release(self, room: JID) -> None:
        self.mine.discard(room)
        await self._release(
            keys=[
                self.keys.room(str(room)),
                self.keys.rooms(self.name),
                self.keys.snapshot(str(room)),
            ],
            args=[self.name, str(room)],
        )

    # --- what only the owner's memory holds -----------------------------------------------
    async def keep(self, room: JID, snapshot: dict[str, str]) -> None:
        if room not in self.mine:
            return
        key = self.keys.snapshot(str(room))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if snapshot:
                pipe.hset(key, mapping=snapshot)
            await pipe.execute()

    async def kept(self, room: JID) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.snapshot(str(room)))
        return {_text(k): _text(v) for k, v in raw.items()}

    # --- nodes come and go ----------------------------------------------------------------
    async def reap(self, node: str) -> list[JID]:
        """A dead node's claims end (its snapshots stay, for whoever takes over)."""
        rooms = []
        key = self.keys.rooms(node)
        for raw in await self.redis.smembers(key):
            room = JID.parse(_text(raw))
            claim = self.keys.room(str(room))
            if _text(await self.redis.get(claim) or b"") == node:
                await self.redis.delete(claim)
                rooms.append(room)
        await self.redis.delete(key)
        return rooms

    async def node_down(self, node: str, rooms: list[JID]) -> None:
        """``node`` died: forget where its rooms were; take over those this node is chosen
        for; drop the occupants that died with it."""
        self.forget_node(node)
        live = self._live() - {node}
        orphans = [room for room in rooms if rendezvous(room, live) == self.name]
        if self.keeper is not None:
            await self.keeper.adopt_orphans(orphans)

    def forget_node(self, node: str) -> None:
        """Stop sending rooms' stanzas to ``node`` (it left or is leaving)."""
        for room in [r for r, n in self.owners.items() if n == node]:
            del self.owners[room]

    async def fenced(self) -> None:
        """The others reaped this node: its rooms live on elsewhere."""
        self.mine.clear()
        self.owners.clear()
        if self.keeper is not None:
            await self.keeper.forget()

    async def reassert(self) -> None:
        """Redis lost its data: claim this node's rooms again, and their snapshots."""
        for room in sorted(self.mine, key=str):
            if await self.claim(room) != self.name:
                self.mine.discard(room)  # the keeper's restate() drops its copy
                log.warning("cluster: room %s was claimed elsewhere meanwhile", room)
        if self.keeper is not None:
            await self.keeper.restate()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
