"""Traffic across nodes: many clients on three nodes, every message delivered once and in
order per pair; and Redis restarted under traffic, after which every node re-asserts its
sessions and nothing the sender's server acknowledged (XEP-0198) is lost."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError

from heron.app import RunningServer, start
from heron.cluster.rooms import rendezvous
from heron.config import config_from_dict
from heron.jid import JID
from tests.cluster import test_nodes
from tests.cluster.test_nodes import PASSWORD, _listening, free_port, until
from tests.conftest import services_required
from tests.rawclient import RawClient

cluster = test_nodes.cluster  # the fixture: config tables for the nodes of a new cluster

MESSAGE = re.compile(r"<message\b[^>]*?from=['\"]([^'\"]+)['\"][^>]*>.*?</message>", re.S)
BODY = re.compile(r"<body>([^<]*)</body>")
MUC = "http://jabber.org/protocol/muc"


class Inbox:
    """Reads a raw client's stream and keeps the messages' (sender, body), in order."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.got: list[tuple[str, str]] = []
        self.acks: list[int] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        client = self.client
        while True:
            chunk = await client.reader.read(65536)
            if not chunk:
                return
            client.buffer += chunk.decode("utf-8", "replace")
            end = 0
            for match in MESSAGE.finditer(client.buffer):
                body = BODY.search(match.group(0))
                if body is not None:
                    self.got.append((match.group(1), body.group(1)))
                end = match.end()
            for ack in re.finditer(
                r"<a xmlns=['\"]urn:xmpp:sm:3['\"] h=['\"](\d+)['\"]", client.buffer
            ):
                self.acks.append(int(ack.group(1)))
                end = max(end, ack.end())
            if "<r xmlns" in client.buffer[end:]:  # the server asks: nothing counted here
                end = len(client.buffer)
            client.buffer = client.buffer[end:]

    def stop(self) -> None:
        self.task.cancel()
        self.client.close()


async def connect(node: RunningServer, user: str, resource: str = "r") -> RawClient:
    client = await RawClient.connect(node.ports["c2s"])
    await client.login(node.certificates["localhost"], user, PASSWORD, resource)
    return client


def message(to: str, body: str) -> str:
    return f"<message to='{to}' type='chat'><body>{body}</body></message>"


@pytest.fixture
async def three(cluster: Callable[[str], dict[str, Any]]) -> AsyncIterator[list[RunningServer]]:
    nodes: list[RunningServer] = []
    try:
        for name in ("a", "b", "c"):
            table = cluster(name)
            table["limits"] = dict.fromkeys(  # every client comes from 127.0.0.1
                (
                    "max_connections_per_ip",
                    "max_unauthenticated_per_ip",
                    "new_connections_per_ip_per_s",
                    "new_connections_per_ip_burst",
                ),
                1000,
            )
            nodes.append(await start(config_from_dict(table, "test")))
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


async def test_many_clients_on_three_nodes_get_each_message_once_in_order(
    three: list[RunningServer],
) -> None:
    # 150 clients, 10,050 messages, every pair across two nodes. (300 clients take about
    # 25 s here, nearly all of it deriving keys for their accounts and logins.)
    pairs, count = 75, 67
    users = [f"u{n}" for n in range(2 * pairs)]
    home = {user: three[n % 3] for n, user in enumerate(users)}
    clients: dict[str, RawClient] = {}
    gate = asyncio.Semaphore(16)  # logins and key derivations a few at a time

    async def arrive(user: str) -> None:
        async with gate:
            await three[0].server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
            clients[user] = await connect(home[user], user)

    await asyncio.gather(*(arrive(user) for user in users))
    inboxes = {user: Inbox(client) for user, client in clients.items()}
    try:
        total = len(users)
        await until(
            lambda: all(
                len(n.server.sessions.remote) == total - len(n.server.sessions) for n in three
            ),
            15,
            "every node sees every session",
        )
        partner = {}
        for n in range(pairs):
            first, second = users[2 * n], users[2 * n + 1]
            partner[first], partner[second] = second, first
        for i in range(count):
            for user in users:
                await clients[user].send(message(f"{partner[user]}@localhost/r", f"{i}"))
        await until(
            lambda: all(len(inbox.got) >= count for inbox in inboxes.values()),
            30,
            "every message arrives",
        )
        await asyncio.sleep(0.3)  # and nothing more
        for user, inbox in inboxes.items():
            expected = [(f"{partner[user]}@localhost/r", f"{i}") for i in range(count)]
            assert inbox.got == expected, user
    finally:
        for inbox in inboxes.values():
            inbox.stop()


@pytest.fixture
def private_redis() -> AsyncIterator[int]:
    """A Redis of this test's own, to restart (never the shared one)."""
    server = shutil.which("redis-server")
    if server is None:
        if services_required():
            pytest.fail("redis-server is not installed and HERON_REQUIRE_SERVICES=1")
        pytest.skip("redis-server is not installed")
    port = free_port()
    _redis_up(port)
    try:
        yield port
    finally:
        _redis_down(port)


def _redis_up(port: int) -> None:
    subprocess.run(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--daemonize", "yes"),
        ],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 10
    while not _listening(port):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)


def _redis_down(port: int) -> None:
    subprocess.run(
        ["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False, capture_output=True
    )
    deadline = time.monotonic() + 10
    while _listening(port):
        assert time.monotonic() < deadline, "redis-server did not stop"
        time.sleep(0.05)


async def test_redis_restarted_under_traffic_loses_nothing_acknowledged(
    cluster: Callable[[str], dict[str, Any]], private_redis: int
) -> None:
    nodes: list[RunningServer] = []
    inboxes: list[Inbox] = []
    try:
        for name in ("a", "b"):
            table = cluster(name)
            table["cluster"]["redis_url"] = f"redis://127.0.0.1:{private_redis}/0"
            nodes.append(await start(config_from_dict(table, "test")))
        a, b = nodes
        assert a.cluster is not None
        assert b.cluster is not None
        for user in ("sender", "receiver"):
            await a.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        receiver = Inbox(await connect(b, "receiver"))
        sender_client = await connect(a, "sender")
        await sender_client.send("<enable xmlns='urn:xmpp:sm:3'/>")
        await sender_client.expect(r"<enabled[^>]*/>")
        sender = Inbox(sender_client)
        inboxes += [receiver, sender]
        receiver_jid = JID.parse("receiver@localhost/r")
        await until(lambda: receiver_jid in a.server.sessions.remote, 10, "a sees the receiver")

        total, restart_at = 300, 100
        restarted = asyncio.get_running_loop().create_future()
        for i in range(total):
            await sender_client.send(message(str(receiver_jid), f"{i}"))
            if i % 10 == 9:
                await sender_client.send("<r xmlns='urn:xmpp:sm:3'/>")
                await asyncio.sleep(0.02)
            if i == restart_at:
                restarted = asyncio.ensure_future(asyncio.to_thread(_restart, private_redis))
        await restarted
        await sender_client.send("<r xmlns='urn:xmpp:sm:3'/>")
        await until(lambda: total in sender.acks, 10, "the server acknowledges everything")

        # Both nodes put their sessions back into the emptied registry.
        sender_jid = JID.parse("sender@localhost/r")
        directory = a.cluster.directory

        async def reasserted() -> bool:
            try:  # the test's own connection to Redis may be the one that broke
                there = await directory.entry(sender_jid), await directory.entry(receiver_jid)
            except ConnectionError:
                return False
            return [e.node if e else None for e in there] == ["a", "b"]

        deadline = time.monotonic() + 10
        while not await reasserted():
            assert time.monotonic() < deadline, "the nodes did not re-assert their sessions"
            await asyncio.sleep(0.1)
        # Everything acknowledged arrives, once and in order.
        await until(lambda: len(receiver.got) >= total, 20, "every message arrives")
        await asyncio.sleep(0.3)
        assert [body for _from, body in receiver.got] == [str(i) for i in range(total)]
        assert not receiver.task.done()  # the receiver's stream was never closed
    finally:
        for inbox in inboxes:
            inbox.stop()
        for node in nodes:
            await node.stop()


def _restart(port: int) -> None:
    _redis_down(port)
    time.sleep(0.3)  # traffic goes on meanwhile
    _redis_up(port)


async def test_a_room_keeps_its_owner_and_occupants_across_a_redis_restart(
    cluster: Callable[[str], dict[str, Any]], private_redis: int
) -> None:
    nodes: list[RunningServer] = []
    inboxes: list[Inbox] = []
    try:
        for name in ("a", "b"):
            table = cluster(name)
            table["cluster"]["redis_url"] = f"redis://127.0.0.1:{private_redis}/0"
            nodes.append(await start(config_from_dict(table, "test")))
        a, b = nodes
        assert a.cluster is not None
        for user in ("alice", "bob"):
            await a.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        room = next(
            f"r{n}@conference.localhost"
            for n in range(100)
            if rendezvous(JID.parse(f"r{n}@conference.localhost"), {"a", "b"}) == "b"
        )
        alice = await connect(a, "alice")
        await until(lambda: "b" in a.cluster.live, 10, "a sees b")  # type: ignore[union-attr]
        await alice.send(f"<presence to='{room}/Alice'><x xmlns='{MUC}'/></presence>")
        await alice.expect(r"<status code=['\"]201['\"]")
        await alice.send(
            f"<iq type='set' id='cfg' to='{room}'><query xmlns='{MUC}#owner'>"
            "<x xmlns='jabber:x:data' type='submit'/></query></iq>"
        )
        await alice.expect(r"<iq[^>]*id=['\"]cfg['\"]")
        bob = await connect(b, "bob")
        await bob.send(f"<presence to='{room}/Bob'><x xmlns='{MUC}'/></presence>")
        await bob.expect(r"<status code=['\"]110['\"]")
        heard = Inbox(bob)
        inboxes += [heard, Inbox(alice)]
        await alice.send(f"<message to='{room}' type='groupchat'><body>before</body></message>")
        await until(lambda: [m for _f, m in heard.got] == ["before"], 10, "bob hears alice")

        await asyncio.to_thread(_restart, private_redis)
        redis = a.cluster.directory.redis
        keys = a.cluster.directory.keys

        async def restated() -> bool:
            try:
                claim = await redis.get(keys.room(room))
                snapshot = await redis.hgetall(keys.snapshot(room))
            except ConnectionError:
                return False
            return claim == b"b" and {b"o:Alice", b"o:Bob"} <= set(snapshot)

        deadline = time.monotonic() + 10
        while not await restated():
            assert time.monotonic() < deadline, "node b did not claim its room again"
            await asyncio.sleep(0.1)
        await alice.send(f"<message to='{room}' type='groupchat'><body>after</body></message>")
        await until(lambda: [m for _f, m in heard.got] == ["before", "after"], 10, "and after")
        assert heard.got[-1][0] == f"{room}/Alice"
    finally:
        for inbox in inboxes:
            inbox.stop()
        for node in nodes:
            await node.stop()
