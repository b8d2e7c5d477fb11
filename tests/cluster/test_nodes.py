"""Heron nodes sharing PostgreSQL and Redis: users on different nodes reach each other,
a newer login on another node replaces the older one, and the sessions of a node killed
with SIGKILL leave the registry within 15 s while the others keep serving."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from heron.app import RunningServer, start
from heron.config import ConfigError, config_from_dict
from heron.jid import JID
from tests.conftest import need_service
from tests.engines import fresh_schema_url
from tests.integration.clients import close, login

REDIS = ("127.0.0.1", 6379)
MODULES = ["disco", "ping", "muc"]  # grows as module stores run on PostgreSQL
PASSWORD = "cluster-pw-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], dict[str, Any]]:
    """Config tables for nodes of one new cluster (own database schema and Redis prefix)."""
    need_service("Redis", *REDIS)
    url = fresh_schema_url(request)
    prefix = f"heron-test-{secrets.token_hex(4)}"
    secret = tmp_path / "secret"
    secret.write_bytes(secrets.token_bytes(32))

    def node(name: str) -> dict[str, Any]:
        return {
            "data_dir": str(tmp_path / name),
            "server_secret_file": str(secret),
            "listeners": [
                {"kind": "c2s", "host": "127.0.0.1", "port": free_port()},
                {"kind": "c2s_tls", "host": "127.0.0.1", "port": free_port()},
            ],
            "storage": {"engine": "postgresql", "url": url, "pool_size": 3},
            "cluster": {
                "node": name,
                "redis_url": f"redis://{REDIS[0]}:{REDIS[1]}/0",
                "prefix": prefix,
                "lease_s": 3.0,
            },
            "hosts": {"localhost": {"modules": MODULES}},
        }

    return node


@pytest.fixture
async def two(cluster: Callable[[str], dict[str, Any]]) -> AsyncIterator[list[RunningServer]]:
    nodes = []
    try:
        for name in ("a", "b"):
            nodes.append(await start(config_from_dict(cluster(name), "test")))
        for user in ("alice", "bob"):
            await nodes[0].server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)


def inbox(client: Any) -> list[Any]:
    got: list[Any] = []
    client.add_event_handler("message", got.append)
    return got


async def test_users_on_two_nodes_chat_both_ways(two: list[RunningServer]) -> None:
    a, b = two
    alice = await login(a, "alice@localhost/pc", PASSWORD)
    bob = await login(b, "bob@localhost/phone", PASSWORD)
    try:
        to_alice, to_bob = inbox(alice), inbox(bob)
        await until(
            lambda: JID.parse("bob@localhost/phone") in a.server.sessions.remote, 10, "mirror"
        )
        bob.send_presence()  # available: a bare-JID message now goes to him (RFC 6121 §8.5.2)
        await until(
            lambda: a.server.sessions.get(JID.parse("bob@localhost/phone")).is_available,  # type: ignore[union-attr]
            10,
            "bob's availability on node a",
        )
        for n in range(20):  # in order, exactly once each
            alice.send_message(mto="bob@localhost", mbody=f"to bob {n}", mtype="chat")
        await until(lambda: len(to_bob) >= 20, 10, "bob gets 20 messages")
        assert [str(m["body"]) for m in to_bob] == [f"to bob {n}" for n in range(20)]
        assert str(to_bob[0]["from"]) == "alice@localhost/pc"
        bob.send_message(mto="alice@localhost/pc", mbody="to alice", mtype="chat")
        await until(lambda: len(to_alice) == 1, 10, "alice's answer")
        assert str(to_alice[0]["from"]) == "bob@localhost/phone"
        await asyncio.sleep(0.3)
        assert len(to_bob) == 20  # nothing twice
    finally:
        await close(alice)
        await close(bob)
    await until(lambda: not a.server.sessions.remote, 10, "bob leaves node a's mirror")


async def test_a_newer_login_on_another_node_replaces_the_older(two: list[RunningServer]) -> None:
    a, b = two
    first = await login(a, "alice@localhost/same", PASSWORD)
    ended: list[Any] = []
    first.add_event_handler("disconnected", ended.append)
    second = await login(b, "alice@localhost/same", PASSWORD)
    try:
        await until(lambda: bool(ended), 10, "the older session ends")
        full = JID.parse("alice@localhost/same")
        await until(lambda: a.server.sessions.get_local(full) is None, 10, "node a lets go")
        assert b.server.sessions.get_local(full) is not None
    finally:
        await close(second)
        await close(first)


async def test_a_killed_node_is_reaped_within_15_s(
    cluster: Callable[[str], dict[str, Any]], tmp_path: Path
) -> None:
    a = await start(config_from_dict(cluster("a"), "test"))
    config_b = cluster("b")
    toml = tmp_path / "b.toml"
    toml.write_text(_toml(config_b), encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-m", "heron", "-c", str(toml), "serve"])  # noqa: ASYNC220 - a node to kill
    try:
        await a.server.accounts.create(JID.parse("bob@localhost"), PASSWORD)
        port = config_b["listeners"][0]["port"]
        await until(lambda: _listening(port), 60, "node b listens")
        b_view = RunningServer(a.server)  # login() needs ports and the certificate only
        b_view.ports = {"c2s": port}
        b_view.certificates = {"localhost": Path(config_b["data_dir"]) / "certs" / "localhost.crt"}
        bob = await login(b_view, "bob@localhost/phone", PASSWORD)
        bob_full = JID.parse("bob@localhost/phone")
        await until(lambda: bob_full in a.server.sessions.remote, 10, "node a sees bob")
        os.kill(child.pid, signal.SIGKILL)
        killed = time.monotonic()
        bob.abort()
        await until(lambda: bob_full not in a.server.sessions.remote, 15, "bob reaped")
        assert time.monotonic() - killed < 15
        assert a.cluster is not None
        assert a.cluster.reaped == 1
        assert await a.cluster.directory.entry(bob_full) is None
        # Node a goes on serving; bob logs in again, on node a this time.
        again = await login(a, "bob@localhost/phone", PASSWORD)
        await close(again)
    finally:
        child.kill()
        child.wait(10)
        await a.stop()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def _toml(table: dict[str, Any]) -> str:
    lines = [
        f'data_dir = "{table["data_dir"]}"',
        f'server_secret_file = "{table["server_secret_file"]}"',
    ]
    for listener in table["listeners"]:
        lines += [
            "[[listeners]]",
            f'kind = "{listener["kind"]}"',
            f'host = "{listener["host"]}"',
            f"port = {listener['port']}",
        ]
    storage, cluster = table["storage"], table["cluster"]
    lines += ["[storage]", 'engine = "postgresql"', f'url = "{storage["url"]}"', "pool_size = 3"]
    lines += ["[cluster]"] + [
        f"{k} = {v!r}" if isinstance(v, float) else f'{k} = "{v}"' for k, v in cluster.items()
    ]
    lines += ["[hosts.localhost]", f"modules = {MODULES!r}".replace("'", '"')]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("cluster", "says"),
    [
        ({"node": "a", "redis_url": "redis://127.0.0.1:6379/0"}, "needs storage.engine"),
        ({"node": "a b", "redis_url": "redis://127.0.0.1:6379/0"}, "cluster.node"),
        ({"node": "a", "redis_url": "http://x"}, "cluster.redis_url"),
        ({"node": "a", "redis_url": "redis://x", "nats_url": "x"}, "cluster.nats_url"),
        ({"redis_url": "redis://x"}, "cluster.node: required"),
    ],
)
def test_cluster_config_is_checked(tmp_path: Path, cluster: dict[str, Any], says: str) -> None:
    """`heron check` and `heron serve` refuse these before anything starts."""
    table: dict[str, Any] = {"cluster": cluster, "hosts": {"localhost": {}}}
    if "engine" not in says:
        table["storage"] = {"engine": "postgresql", "url": "postgresql://u@127.0.0.1/db"}
    with pytest.raises(ConfigError, match=says):
        config_from_dict(table, "test")


async def test_messages_for_a_killed_nodes_user_wait_offline_and_follow_it(
    cluster: Callable[[str], dict[str, Any]], tmp_path: Path
) -> None:
    """Under traffic: a message sent as its node dies waits in the bus, then (the user
    reaped) lands in offline storage with the later ones; the user logs in on another
    node and gets them all, in order."""
    table = cluster("a")
    table["hosts"]["localhost"]["modules"] = [*MODULES, "offline"]
    a = await start(config_from_dict(table, "test"))
    config_c = cluster("c")
    toml = tmp_path / "c.toml"
    toml.write_text(_toml(config_c), encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-m", "heron", "-c", str(toml), "serve"])  # noqa: ASYNC220 - a node to kill
    clients: list[Any] = []
    try:
        for user in ("alice", "bob"):
            await a.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        port = config_c["listeners"][0]["port"]
        await until(lambda: _listening(port), 60, "node c listens")
        c_view = RunningServer(a.server)  # login() needs the port and the certificate only
        c_view.ports = {"c2s": port}
        c_view.certificates = {"localhost": Path(config_c["data_dir"]) / "certs" / "localhost.crt"}
        bob = await login(c_view, "bob@localhost/phone", PASSWORD)
        bob.send_presence()
        alice = await login(a, "alice@localhost/pc", PASSWORD)
        clients += [alice, bob]
        bob_full = JID.parse("bob@localhost/phone")
        await until(
            lambda: (s := a.server.sessions.get(bob_full)) is not None and s.is_available,
            10,
            "node a sees bob available",
        )
        os.kill(child.pid, signal.SIGKILL)
        await asyncio.to_thread(child.wait, 10)
        bob.abort()
        alice.send_message(mto="bob@localhost", mbody="as c dies", mtype="chat")
        await until(lambda: bob_full not in a.server.sessions.remote, 15, "bob reaped")
        alice.send_message(mto="bob@localhost", mbody="after", mtype="chat")
        await asyncio.sleep(0.5)
        again = await login(a, "bob@localhost/tablet", PASSWORD)
        clients.append(again)
        got = inbox(again)
        again.send_presence()  # initial presence: offline storage hands its messages over
        await until(lambda: len(got) >= 2, 10, "bob gets what waited")
        await asyncio.sleep(0.3)
        assert [str(m["body"]) for m in got] == ["as c dies", "after"]
    finally:
        for client in clients:
            await close(client)
        child.kill()
        child.wait(10)
        await a.stop()
