"""Who is online where: the cluster's session registry, kept in Redis.

Per bare JID a hash maps each resource to its entry (node, priority, availability, last
broadcast presence); per node a set lists the full JIDs it holds, so the sessions of a
dead node can be found and removed. Each change is one Lua script, so a binding on one
node and a removal by another never interleave: a node removes an entry only while the
entry still names it.

Nodes hold leases (`heron:lease:<node>`, refreshed well within their lifetime). An epoch
key, written by the first node to join, tells a node whose lease vanished whether it was
reaped (the epoch it joined under is still there: fence itself) or Redis lost its data (no
epoch, or a new one another node wrote since: re-assert everything).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from heron.jid import JID


class Keys:
    """The registry's key names, under the cluster's prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}:"
        self.epoch = self.prefix + "epoch"
        self.nodes = self.prefix + "nodes"

    def sessions(self, bare: str) -> str:
        return f"{self.prefix}sess:{bare}"

    def held(self, node: str) -> str:
        return f"{self.prefix}held:{node}"

    def lease(self, node: str) -> str:
        return f"{self.prefix}lease:{node}"

    def reaping(self, node: str) -> str:
        return f"{self.prefix}reaping:{node}"

    def room(self, room: str) -> str:
        """The room's claim: the name of the node that runs it."""
        return f"{self.prefix}room:{room}"

    def rooms(self, node: str) -> str:
        """The rooms a node claimed."""
        return f"{self.prefix}rooms:{node}"

    def snapshot(self, room: str) -> str:
        """What the room's owner keeps only in memory (occupants), for a takeover."""
        return f"{self.prefix}snap:{room}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One bound resource as the cluster sees it."""

    node: str
    priority: int = 0
    available: bool = False
    presence: str = ""  # the serialized last broadcast presence, "" when unavailable

    def dump(self) -> str:
        return json.dumps([self.node, self.priority, self.available, self.presence])

    @classmethod
    def load(cls, raw: str | bytes) -> Entry:
        node, priority, available, presence = json.loads(raw)
        return cls(str(node), int(priority), bool(available), str(presence))


# KEYS: sessions hash, this node's set; ARGV: resource, full JID, entry, node, held prefix.
# Returns the entry it replaced ("" when none); moves the full JID out of the old node's set.
_BIND = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
if old then
  local was = cjson.decode(old)[1]
  if was ~= ARGV[4] then redis.call('SREM', ARGV[5] .. was, ARGV[2]) end
  return old
end
return ''
"""

# KEYS: sessions hash, node's set; ARGV: resource, full JID, node, new entry or "".
# Changes (or, with "", removes) the entry only while it still names the node.
_IF_MINE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or cjson.decode(cur)[1] ~= ARGV[3] then
  redis.call('SREM', KEYS[2], ARGV[2])
  return 0
end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
end
return 1
"""

# KEYS: lease; ARGV: token, milliseconds. 1: refreshed; 0: the lease is gone or another's.
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RedisDirectory:
    """The registry on one Redis database (`redis.asyncio` client)."""

    def __init__(self, client: Any, node: str, lease_s: float, prefix: str = "heron") -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.node = node
        self.lease_ms = int(lease_s * 1000)
        self.token = secrets.token_hex(8)  # this run of the node (a restart is a new lease)
        self.epoch = ""  # the registry's epoch when this node joined
        self._bind = client.register_script(_BIND)
        self._if_mine = client.register_script(_IF_MINE)
        self._refresh = client.register_script(_REFRESH)

    @classmethod
    def connect(cls, url: str, node: str, lease_s: float, prefix: str) -> RedisDirectory:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        # After a Redis restart every pooled connection is stale: each command is tried
        # again on a fresh one (the registry's changes are idempotent).
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), 3)
        return cls(redis.asyncio.from_url(url, retry=retry), node, lease_s, prefix)

    async def close(self) -> None:
        await self.redis.aclose()

    # --- the node's lease ---------------------------------------------------------------
    async def join(self) -> None:
        """Take the lease (a fresh one: this run's token) and note the epoch."""
        await self.redis.set(self.keys.epoch, secrets.token_hex(8), nx=True)
        self.epoch = _text(await self.redis.get(self.keys.epoch) or b"")
        await self.redis.set(self.keys.lease(self.node), self.token, px=self.lease_ms)
        await self.redis.sadd(self.keys.nodes, self.node)

    async def refresh(self) -> str:
        """``ok``; ``reaped`` (the others removed this node: fence); ``lost`` (Redis lost
        its data: re-assert every session). After a restart of Redis another node may have
        written a new epoch already: only the epoch this node joined under means reaped."""
        if await self._refresh(keys=[self.keys.lease(self.node)], args=[self.token, self.lease_ms]):
            return "ok"
        epoch = await self.redis.get(self.keys.epoch)
        return "reaped" if epoch is not None and _text(epoch) == self.epoch else "lost"

    async def leave(self) -> None:
        """A clean stop: the node's sessions and lease go at once."""
        for full in await self.redis.smembers(self.keys.held(self.node)):
            jid = JID.parse(_text(full))
            await self.unbind(jid)
        await self.redis.delete(self.keys.lease(self.node), self.keys.held(self.node))
        await self.redis.srem(self.keys.nodes, self.node)

    async def census(self) -> tuple[set[str], list[str]]:
        """The member nodes whose lease is alive (this one included), and those whose lease
        has expired."""
        live, dead = {self.node}, []
        for raw in await self.redis.smembers(self.keys.nodes):
            node = _text(raw)
            if node == self.node:
                continue
            if await self.redis.exists(self.keys.lease(node)):
                live.add(node)
            else:
                dead.append(node)
        return live, sorted(dead)

    async def claim_reaping(self, node: str) -> bool:
        """One node reaps a dead one; the claim expires in case the reaper dies too."""
        return bool(await self.redis.set(self.keys.reaping(node), self.node, nx=True, px=30000))

    async def reap(self, node: str) -> list[tuple[JID, Entry]]:
        """Remove a dead node's sessions; returns those removed (for their presence).
        A node that is back under its name (a restarted worker took a new lease since it
        was found dead) is left alone: what it holds now is its new run's."""
        removed: list[tuple[JID, Entry]] = []
        if node != self.node and await self.redis.exists(self.keys.lease(node)):
            return removed
        for raw in await self.redis.smembers(self.keys.held(node)):
            full = JID.parse(_text(raw))
            entry = await self.entry(full)
            if entry is not None and entry.node == node and await self._change(full, node, ""):
                removed.append((full, entry))
        await self.redis.delete(self.keys.held(node))
        await self.redis.srem(self.keys.nodes, node)
        return removed

    # --- sessions -----------------------------------------------------------------------
    async def bind(self, full: JID, entry: Entry) -> Entry | None:
        """Name this node for ``full``; returns the entry it replaced (maybe another node's)."""
        old = await self._bind(
            keys=[self.keys.sessions(str(full.bare)), self.keys.held(entry.node)],
            args=[full.resource or "", str(full), entry.dump(), entry.node, self.keys.held("")],
        )
        return Entry.load(old) if old else None

    async def update(self, full: JID, entry: Entry) -> bool:
        """Change the entry (presence, priority) while it is still this node's."""
        return await self._change(full, entry.node, entry.dump())

    async def unbind(self, full: JID) -> bool:
        return await self._change(full, self.node, "")

    async def _change(self, full: JID, node: str, entry: str) -> bool:
        done = await self._if_mine(
            keys=[self.keys.sessions(str(full.bare)), self.keys.held(node)],
            args=[full.resource or "", str(full), node, entry],
        )
        return bool(done)

    async def entry(self, full: JID) -> Entry | None:
        raw = await self.redis.hget(self.keys.sessions(str(full.bare)), full.resource or "")
        return Entry.load(raw) if raw else None

    async def everyone(self) -> AsyncIterator[tuple[JID, Entry]]:
        """Every bound resource in the cluster (a node's start, or after Redis restarted)."""
        async for key in self.redis.scan_iter(match=self.keys.sessions("*"), count=500):
            bare = _text(key)[len(self.keys.sessions("")) :]
            for resource, raw in (await self.redis.hgetall(key)).items():
                yield JID.parse(f"{bare}/{_text(resource)}"), Entry.load(raw)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
