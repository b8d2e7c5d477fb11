"""The cluster's parts that need no Redis: rendezvous hashing, a room's snapshot and its
takeover, and the bus's ordering, retries and giving up (over a fake engine)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from heron import ns
from heron.cluster.bus import SEP, _Batching
from heron.cluster.rooms import rendezvous
from heron.jid import JID
from heron.modules.muc.config import MUC
from heron.modules.muc.room import Room, RoomPolicy
from heron.xmlstream.element import Element

ROOM = JID.parse("lounge@conference.example.org")
ALICE = JID.parse("alice@example.org/phone")
BOB = JID.parse("bob@example.org/laptop")
POLICY = RoomPolicy(secret=b"k")


def test_rendezvous_agrees_and_moves_only_a_dead_nodes_rooms() -> None:
    rooms = [JID.parse(f"r{n}@conference.example.org") for n in range(300)]
    nodes = {"a", "b", "c"}
    before = {room: rendezvous(room, nodes) for room in rooms}
    assert before == {room: rendezvous(room, set(sorted(nodes))) for room in rooms}
    assert {n: list(before.values()).count(n) > 60 for n in nodes} == dict.fromkeys(nodes, True)
    after = {room: rendezvous(room, nodes - {"c"}) for room in rooms}
    moved = {room for room in rooms if before[room] != after[room]}
    assert moved == {room for room in rooms if before[room] == "c"}


def joined_room() -> Room:
    room = Room.create(ROOM, ALICE, POLICY)
    room.join("Alice", ALICE, Element("presence", ns.CLIENT), now=1.0, created=True)
    room.configure(dataclasses.replace(room.config, name="Lounge"))
    bob = Element("presence", ns.CLIENT)
    bob.add("show", ns.CLIENT, text="away")
    room.join("Bob", BOB, bob, now=1.0)
    room.subject, room.subject_by = "Plans", "Bob"
    return room


def test_a_snapshot_brings_a_temporary_room_back_with_its_occupants() -> None:
    room = joined_room()
    snapshot = room.snapshot()
    back = Room.from_snapshot(ROOM, snapshot, POLICY, None)
    assert back is not None
    readmitted = back.readmit(snapshot, now=2.0)
    assert sorted(o.nick for o in readmitted) == ["Alice", "Bob"]
    assert back.config.name == "Lounge"
    assert (back.subject, back.subject_by) == ("Plans", "Bob")
    assert back.affiliations == room.affiliations
    bob = back.occupant(BOB)
    assert bob is not None
    assert (bob.nick, bob.role, bob.affiliation) == ("Bob", "participant", "none")
    assert bob.presence.child_text("show", ns.CLIENT) == "away"
    # Back in without a word: Bob talks at once, and everyone gets it.
    message = Element("message", ns.CLIENT, {"type": "groupchat"})
    message.add("body", ns.CLIENT, text="still here")
    relayed, _changed = back.groupchat(bob, message, now=2.0)
    assert sorted(el.attrs["to"] for el in back.publish(relayed, 2.0)) == [str(ALICE), str(BOB)]


def test_the_room_store_record_wins_over_the_snapshot() -> None:
    room = joined_room()
    snapshot = room.snapshot()
    stored = dataclasses.replace(room.record(), subject="From the database")
    back = Room.from_snapshot(ROOM, snapshot, POLICY, stored)
    assert back is not None
    assert back.subject == "From the database"
    assert Room.from_snapshot(ROOM, {}, POLICY, None) is None  # nobody knows the room
    assert back.readmit({}, now=2.0) == []
    bad = {"o:Eve": '["eve@example.org/x", "none", "participant", "<not xml"]'}
    assert back.readmit(bad, now=2.0) == []  # an unreadable presence is skipped
    join = Element("presence", ns.CLIENT)
    join.add("x", MUC)
    assert back.join("Carol", JID.parse("carol@example.org/x"), join, now=2.0)


class FakeBus(_Batching):
    """Publishes into a list; while ``down``, nothing is heard."""

    def __init__(self, retry_s: float) -> None:
        super().__init__("t", retry_s)
        self.heard: list[tuple[str, list[bytes]]] = []
        self.down = False
        self.given_up: list[tuple[str, list[bytes]]] = []
        self.undelivered = lambda node, frames: self.given_up.append((node, frames))

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> list[int]:
        if self.down:
            return [0] * len(messages)
        self.heard += [(channel, payload.split(SEP)) for channel, payload in messages]
        return [1] * len(messages)


async def until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def frames_for(bus: FakeBus, node: str) -> list[bytes]:
    return [f for channel, frames in bus.heard if channel == f"t.node.{node}" for f in frames]


async def test_the_bus_holds_what_nobody_heard_and_sends_it_once_in_order() -> None:
    bus = FakeBus(retry_s=10)
    bus.send("b", b"1")
    bus.send("b", b"2")  # the same turn: one published message
    await until(lambda: frames_for(bus, "b") == [b"1", b"2"], 2)
    assert len(bus.heard) == 1
    bus.down = True
    for n in range(3, 8):
        bus.send("b", str(n).encode())
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    bus.down = False
    await until(lambda: len(frames_for(bus, "b")) == 7, 3)
    assert frames_for(bus, "b") == [str(n).encode() for n in range(1, 8)]
    assert bus.lost == 0
    await bus.drain()


async def test_the_bus_gives_up_on_a_node_that_is_gone() -> None:
    bus = FakeBus(retry_s=0.3)
    bus.down = True
    bus.send("b", b"x")
    await until(lambda: bool(bus.given_up), 3)  # nobody heard it within retry_s
    assert bus.given_up == [("b", [b"x"])]
    bus.send("c", b"y")
    await asyncio.sleep(0.05)
    bus.abandon("c")  # reaped: at once
    await until(lambda: len(bus.given_up) == 2, 1)
    assert bus.given_up[1] == ("c", [b"y"])
    assert bus.lost == 2
    await bus.drain()
