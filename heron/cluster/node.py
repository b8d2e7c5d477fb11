"""One node of a Heron cluster: its sessions in the shared registry, the others' in a local
mirror, stanzas for them over the bus, and the lease that tells the others it is alive.

The router keeps asking the session manager for a JID's resources without waiting: the
manager answers from local sessions plus the mirror, in which every other node's
resource is a `RemoteSession` whose `deliver()` puts the stanza on the bus to its node.
The mirror is filled from the registry when the node starts and kept current by the
registry changes every node broadcasts.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from heron import ns
from heron.cluster.bus import Bus, NatsBus, RedisBus
from heron.cluster.directory import Entry, RedisDirectory
from heron.cluster.rooms import ClusterRooms
from heron.config import ClusterConfig
from heron.core.sessions import Hold, Session, SessionManager
from heron.jid import JID, InvalidJID
from heron.stanza import Stanza, StreamCondition, StreamError
from heron.xmlstream import Limits
from heron.xmlstream.element import Element
from heron.xmlstream.serializer import serialize
from heron.xmlstream.stored import parse_stored

log = logging.getLogger(__name__)

STANZA = b"S"
KICK = b"K"
ROOM = b"R"  # a stanza for a room this node does not run, to route on its owner

EndedHook = Callable[[JID, Element], Awaitable[None]]
"""Run the hooks of a session that ended (the roster tells contacts it is unavailable)."""


class RemoteSession:
    """A resource bound on another node, as the session manager sees it."""

    hibernating = False

    def __init__(self, jid: JID, entry: Entry, node: ClusterNode) -> None:
        self._jid = jid
        self.entry = entry
        self._node = node
        self._presence: Element | None = None

    @property
    def jid(self) -> JID:
        return self._jid

    @property
    def is_available(self) -> bool:
        return self.entry.available

    @property
    def priority(self) -> int:
        return self.entry.priority

    @property
    def presence(self) -> Element | None:
        if self._presence is None and self.entry.presence:
            self._presence = parse_stored(self.entry.presence, ("presence", ns.CLIENT))
        return self._presence

    def deliver(self, element: Element) -> None:
        self._node.forward(self.entry.node, self._jid, element)

    def set_hold(self, hold: Hold | None) -> None:
        return None  # client state indication is the owning node's business

    def close(self, error: StreamError | None = None) -> None:
        self._node.kick(self.entry.node, self._jid)


class ClusterNode:
    def __init__(
        self,
        config: ClusterConfig,
        sessions: SessionManager,
        route: Callable[[Stanza], Awaitable[None]],
        ended: EndedHook,
        limits: Limits,
        directory: RedisDirectory | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.config = config
        self.name = config.node
        self.sessions = sessions
        self.route = route
        self.ended = ended
        self.limits = limits
        self.directory = directory or RedisDirectory.connect(
            config.redis_url, config.node, config.lease_s, config.prefix
        )
        retry_s = 3 * config.lease_s  # past the reaping of a dead node
        self.bus: Bus = bus or (
            NatsBus(config.nats_url, config.prefix, retry_s)
            if config.nats_url
            else RedisBus(config.redis_url, config.prefix, retry_s)
        )
        self.bus.undelivered = self._undelivered
        self.live: set[str] = {self.name}  # nodes with a live lease, as last seen
        self.rooms = ClusterRooms(
            self.directory, self._forward_room, lambda: self.live, self._rooms_moved
        )
        self._ops: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._routing: asyncio.Queue[Stanza | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        # XEP-0198 across nodes: accounts whose client failed to resume here a session of
        # another node (previd), released there once the client is available here again.
        self.sm_release: Callable[[str, JID], None] | None = None
        self._resuming: dict[JID, str] = {}
        self.reaped = 0  # sessions this node removed for dead nodes (metrics, tests)

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        await self.bus.start(self.name, self._on_stanzas, self._on_events)
        # A node restarted under the same name (a worker the supervisor brought back)
        # before the others reaped it: its previous run's sessions are gone, say so.
        await self._remove_node(self.name)
        await self.directory.join()
        self.live, _dead = await self.directory.census()
        async for full, entry in self.directory.everyone():
            if entry.node != self.name:
                self.sessions.add_remote(RemoteSession(full, entry, self))
        self.sessions.listener = self
        self._started = True
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run_ops()),
            loop.create_task(self._lease()),
            loop.create_task(self._run_routing()),
        ]
        log.info(
            "cluster node %s joined (%d remote sessions)", self.name, len(self.sessions.remote)
        )

    async def stop(self) -> None:
        if not self._started:  # the server failed to start: nothing joined
            await self.bus.close()
            await self.directory.close()
            return
        self.sessions.listener = None
        # No more stanzas for this node: the others hold theirs and route them again once
        # it is gone. What it had received is handled first (rooms' go to their next node).
        try:
            await self.bus.unsubscribe()
        except Exception as exc:  # Redis is away: the others give up on it when reaped
            log.warning("cluster node %s: could not unsubscribe: %s", self.name, exc)
        # The registry updates still queued are done first (a cancelled Redis call can
        # surface as a connection error, which the loop would take for an outage).
        self._ops.put_nowait(None)
        self._routing.put_nowait(None)
        self._tasks[1].cancel()  # the lease
        _done, stuck = await asyncio.wait(self._tasks, timeout=5)
        for task in stuck:
            task.cancel()
        try:
            for session in self.sessions.all():
                self.bus.broadcast(_event("del", session.jid, self.name))
            # After its sessions' removal: the rooms it handed off drop them too.
            rooms = self.rooms.handed + await self.rooms.reap(self.name)
            listed = json.dumps([str(r) for r in rooms])
            self.bus.broadcast(json.dumps(["down", "", self.name, listed]).encode())
            await self.directory.leave()
        finally:
            await self.bus.close()
            await self.directory.close()

    # --- the session manager tells us -------------------------------------------------
    def bound(self, session: Session) -> None:
        self._ops.put_nowait(lambda: self._bind(session))

    def unbound(self, session: Session) -> None:
        full = session.jid
        self._ops.put_nowait(lambda: self._unbind(full))

    def presence_changed(self, session: Session) -> None:
        self._ops.put_nowait(lambda: self._update(session))

    def _entry(self, session: Session) -> Entry:
        presence = getattr(session, "presence", None)
        text = serialize(presence, ns.CLIENT) if presence is not None else ""
        return Entry(self.name, session.priority, session.is_available, text)

    async def _bind(self, session: Session) -> None:
        entry = self._entry(session)
        old = await self.directory.bind(session.jid, entry)
        self.bus.broadcast(_event("set", session.jid, self.name, entry))
        if old is not None and old.node != self.name:
            # RFC 6120 §7.7.2.2: the newer session wins, wherever the older one is.
            self.kick(old.node, session.jid)

    async def _unbind(self, full: JID) -> None:
        if await self.directory.unbind(full):
            self.bus.broadcast(_event("del", full, self.name))

    async def _update(self, session: Session) -> None:
        if self.sessions.get_local(session.jid) is not session:
            return  # gone meanwhile; its unbind follows
        entry = self._entry(session)
        if await self.directory.update(session.jid, entry):
            self.bus.broadcast(_event("set", session.jid, self.name, entry))
        previd = self._resuming.pop(session.jid.bare, None) if entry.available else None
        if previd is not None:
            # After its availability (same channel, so heard first): the old node's
            # hand-back of unacknowledged messages by bare JID finds this session.
            self.bus.broadcast(
                json.dumps(["smend", str(session.jid.bare), self.name, previd]).encode()
            )

    def sm_elsewhere(self, previd: str, account: JID) -> None:
        """A client could not resume ``previd`` here: maybe it hibernates on another node."""
        if len(self._resuming) < 10000:
            self._resuming[account] = previd

    async def _run_ops(self) -> None:
        while True:
            op = await self._ops.get()
            if op is None:  # stopping
                return
            try:
                await op()
            except (OSError, TimeoutError, RedisConnectionError, RedisTimeoutError) as exc:
                # Redis is away: a restart ends in every node re-asserting its sessions.
                log.warning("cluster registry update failed: %s", exc)
            except Exception:
                log.exception("cluster registry update failed")

    # --- stanzas between nodes ----------------------------------------------------------
    def forward(self, node: str, full: JID, element: Element) -> None:
        """To the session ``full`` on ``node`` (the stanza's own 'to' may be the bare JID)."""
        frame = f"{full}\x01{serialize(element, ns.CLIENT)}"
        self.bus.send(node, STANZA + frame.encode())

    def kick(self, node: str, full: JID) -> None:
        self.bus.send(node, KICK + str(full).encode())

    def _forward_room(self, node: str, stanza: Stanza, hops: int) -> None:
        sender = str(stanza.from_) if stanza.from_ is not None else ""
        to = str(stanza.to) if stanza.to is not None else ""
        xml = serialize(stanza.element, ns.CLIENT)
        # Where the sender's session is: the owner may not have heard of it yet (its bind
        # travels on the events channel), and answers it at once (the join's presences).
        session = self.sessions.get(stanza.from_) if stanza.from_ is not None else None
        home = ""
        if isinstance(session, RemoteSession):
            home = session.entry.node
        elif session is not None:
            home = self.name
        frame = f"{hops}\x01{home}\x01{sender}\x01{to}\x01{xml}"
        self.bus.send(node, ROOM + frame.encode())

    def _rooms_moved(self, rooms: list[JID]) -> None:
        """This node stops: the others take its rooms over now (from the snapshots)."""
        listed = json.dumps([str(r) for r in rooms])
        self.bus.broadcast(json.dumps(["moved", "", self.name, listed]).encode())

    def _room_stanza(self, body: str) -> Stanza | None:
        hops, home, sender, to, xml = body.split("\x01", 4)
        element = parse_stored(xml, limits=self.limits)
        if element is None:
            return None
        try:
            stanza = Stanza(
                element,
                JID.parse(to) if to else None,
                JID.parse(sender) if sender else None,
                {"hops": int(hops), "room": True},
            )
        except (InvalidJID, ValueError):
            return None
        sender_jid = stanza.from_
        if home and home != self.name and sender_jid and self.sessions.get(sender_jid) is None:
            # Its "set" event is on its way.
            self.sessions.add_remote(RemoteSession(sender_jid, Entry(home), self))
        return stanza

    def _on_stanzas(self, frames: list[bytes]) -> None:
        for frame in frames:
            kind, body = frame[:1], frame[1:].decode()
            if kind == KICK:
                self._kicked(body)
            elif kind == ROOM:
                stanza = self._room_stanza(body)
                if stanza is not None:
                    self._routing.put_nowait(stanza)
            elif kind == STANZA:
                full, _, xml = body.partition("\x01")
                element = parse_stored(xml, limits=self.limits)
                if element is not None:
                    self._arrived(full, element)

    def _kicked(self, text: str) -> None:
        try:
            session = self.sessions.get_local(JID.parse(text))
        except InvalidJID:
            return
        if session is not None:
            session.close(StreamError(StreamCondition.CONFLICT, "replaced by a new connection"))

    def _arrived(self, full: str, element: Element) -> None:
        try:
            to = JID.parse(full)
        except InvalidJID:
            return
        session = self.sessions.get_local(to)
        if session is not None:
            session.deliver(element)
        else:
            # Gone from this node since the sender looked: the bare JID's rules decide
            # again (another resource, offline storage), never on this node's word alone.
            self._reroute(to, element)

    def _reroute(self, to: JID, element: Element) -> None:
        if element.tag != "message" or to.resource is None:
            return
        try:
            sender = JID.parse(element.attrs.get("from", ""))
        except InvalidJID:
            return
        copy = element.copy()
        copy.attrs["to"] = str(to.bare)
        self._routing.put_nowait(Stanza(copy, to.bare, sender, {"redelivered": True}))

    def _undelivered(self, node: str, frames: list[bytes]) -> None:
        """Stanzas no subscription of ``node`` took (it died): its messages are routed again
        by their bare JID, now that the reaping has moved its users (elsewhere, offline)."""
        for frame in frames:
            if frame[:1] == ROOM:  # its owner died: routed again, to the room's next owner
                stanza = self._room_stanza(frame[1:].decode())
                if stanza is not None:
                    self._routing.put_nowait(stanza)
                continue
            if frame[:1] != STANZA:
                continue
            full, _, xml = frame[1:].decode().partition("\x01")
            element = parse_stored(xml, limits=self.limits)
            try:
                to = JID.parse(full)
            except InvalidJID:
                continue
            if element is not None:
                self._reroute(to, element)

    async def _run_routing(self) -> None:
        """Stanzas this node routes for others, one at a time, in the order they came."""
        while True:
            stanza = await self._routing.get()
            if stanza is None:  # stopping
                return
            if stanza.meta.get("room") and self.rooms.leaving and stanza.to is not None:
                # Its room service has stopped (or is stopping): on to the room's next node.
                successor = self.rooms.successor(stanza.to.bare)
                hops = stanza.meta.get("hops", 0)
                if successor is not None and isinstance(hops, int):
                    self._forward_room(successor, stanza, hops + 1)
                    continue
            await self.route(stanza)

    # --- registry changes from the other nodes ------------------------------------------
    def _on_events(self, frames: list[bytes]) -> None:
        for frame in frames:
            try:
                op, full_text, node, raw = json.loads(frame)
                if node == self.name:
                    continue
                if op == "down":
                    self._node_down(node, [JID.parse(r) for r in json.loads(raw)])
                    continue
                if op == "moved":  # a stopping node hands its rooms over
                    rooms = [JID.parse(r) for r in json.loads(raw)]
                    self.rooms.forget_node(node)  # at once: no room stanza goes there now
                    self._ops.put_nowait(functools.partial(self.rooms.node_down, node, rooms))
                    continue
                if op == "smend":
                    if self.sm_release is not None:
                        self.sm_release(raw, JID.parse(full_text))
                    continue
                full = JID.parse(full_text)
            except (ValueError, InvalidJID):
                continue
            if op == "set":
                self.live.add(node)
                self.sessions.add_remote(RemoteSession(full, Entry.load(raw), self))
            elif op == "del":
                self.sessions.remove_remote(full, node)

    def _node_down(self, node: str, rooms: list[JID]) -> None:
        """``node`` is gone (reaped, or stopped): its sessions leave the mirror, stanzas
        still waiting for it are routed again, its rooms get new owners."""
        self.sessions.remove_node(node)
        self.live.discard(node)
        self.bus.abandon(node)
        self._ops.put_nowait(lambda: self.rooms.node_down(node, rooms))

    # --- leases: alive, dead, fenced ----------------------------------------------------
    async def _lease(self) -> None:
        period = self.config.lease_s / 3
        reasserting = False  # until done in full: a failure half-way is tried again
        while True:
            await asyncio.sleep(period)
            try:
                state = await self.directory.refresh()
                if state == "reaped":
                    await self._fence()
                elif state == "lost":
                    reasserting = True
                if reasserting:
                    await self._reassert()
                    reasserting = False
                live, dead = await self.directory.census()
                self.live |= live
                await self._reap(dead)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis unreachable: keep serving, try again
                log.warning("cluster lease: %s", exc)

    async def _fence(self) -> None:
        """The others took this node for dead and removed its sessions: its streams end
        (the clients reconnect and bind afresh) and it joins again."""
        log.warning("cluster node %s was reaped by the others: closing its streams", self.name)
        await self.rooms.fenced()
        for session in self.sessions.all():
            session.close(
                StreamError(StreamCondition.SYSTEM_SHUTDOWN, "the cluster lost this node")
            )
        await self.directory.join()

    async def _reassert(self) -> None:
        """Redis lost its data (a restart): every node puts its own sessions back."""
        log.warning("cluster registry was emptied: re-asserting %s's sessions", self.name)
        await self.directory.join()
        for session in self.sessions.all():
            await self._bind(session)
        await self.rooms.reassert()

    async def _reap(self, dead: list[str]) -> None:
        for node in dead:
            if await self.directory.claim_reaping(node):
                await self._remove_node(node)

    async def _remove_node(self, node: str) -> None:
        """Remove a dead node's sessions and room claims everywhere; its users' contacts
        see them go."""
        removed = await self.directory.reap(node)
        rooms = await self.rooms.reap(node)
        if not removed and not rooms:
            return
        # Every node (this one too) hears it: mirrors, stanzas held for it, its rooms.
        self.bus.broadcast(
            json.dumps(["down", "", node, json.dumps([str(r) for r in rooms])]).encode()
        )
        # Here at once (the others when the event arrives): what waits for the node is
        # routed again before anything new can be routed without it.
        self.bus.abandon(node)
        self.sessions.remove_node(node)
        log.warning("cluster node %s is gone: removed %d sessions", node, len(removed))
        for full, entry in removed:
            self.reaped += 1
            if entry.available:
                unavailable = Element("presence", ns.CLIENT, {"type": "unavailable"})
                unavailable.attrs["from"] = str(full)
                await self.ended(full, unavailable)


def _event(op: str, full: JID, node: str, entry: Entry | None = None) -> bytes:
    return json.dumps([op, str(full), node, entry.dump() if entry else ""]).encode()


def make_ended(registry_for: Callable[[str], Any]) -> EndedHook:
    """The `session/ended` hooks of the user's host, for a session of a dead node."""

    async def ended(full: JID, unavailable: Element) -> None:
        registry = registry_for(full.domain)
        if registry is not None:
            stanza = Stanza(unavailable, None, full, {"was_available": True})
            await registry.run_hooks("session/ended", stanza)

    return ended
