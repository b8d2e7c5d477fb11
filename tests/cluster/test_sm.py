"""XEP-0198 across nodes. A session's stream management state lives in its node's memory,
so a client that comes back on another node gets a clean item-not-found and binds again;
what it had not acknowledged then reaches its new session: at once when its old node is
alive (that node ends the hibernating session and hands the stanzas back), after the
reaping when its old node was killed (stanzas the dead node never took are routed again)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from heron.app import RunningServer, start
from heron.config import config_from_dict
from heron.jid import JID
from tests.cluster import test_nodes
from tests.cluster.test_nodes import PASSWORD, _listening, _toml, until
from tests.cluster.test_traffic import Inbox, connect, message
from tests.rawclient import RawClient

cluster = test_nodes.cluster  # the fixture: config tables for the nodes of a new cluster


@pytest.fixture
async def two(cluster: Callable[[str], dict[str, Any]]) -> AsyncIterator[list[RunningServer]]:
    nodes: list[RunningServer] = []
    try:
        for name in ("a", "b"):
            nodes.append(await start(config_from_dict(cluster(name), "test")))
        for user in ("x", "sender"):
            await nodes[0].server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


async def resumable(port: int, ca: Path, resource: str) -> tuple[RawClient, str]:
    """Log in as x and enable resumable stream management; returns the session id."""
    client = await RawClient.connect(port)
    await client.login(ca, "x", PASSWORD, resource)
    await client.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
    enabled = await client.expect(r"<enabled[^>]*id=['\"]([^'\"]+)['\"][^>]*/>")
    return client, enabled.group(1)


async def resume_elsewhere(port: int, ca: Path, previd: str, h: int) -> RawClient:
    """On another node: authenticate, ask to resume, be refused with item-not-found, bind
    a new resource and become available."""
    client = await RawClient.connect(port)
    await client.starttls(ca)
    await client.open_stream()
    token = base64.b64encode(f"\0x\0{PASSWORD}".encode()).decode()
    await client.send(
        f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
    )
    await client.expect(r"<success[^>]*(/>|>.*?</success>)")
    await client.open_stream()
    await client.send(f"<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{h}'/>")
    failed = await client.expect(r"<failed[^>]*>.*?</failed>")
    assert "item-not-found" in failed.group(0)
    await client.send(
        "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<resource>new</resource></bind></iq>"
    )
    await client.expect(r"</iq>")
    await client.send("<presence/>")
    return client


def bodies(inbox: Inbox) -> list[str]:
    return [body for _from, body in inbox.got]


async def test_back_on_another_node_the_unacknowledged_follow_at_once(
    two: list[RunningServer],
) -> None:
    a, b = two
    inboxes: list[Inbox] = []
    try:
        old, previd = await resumable(a.ports["c2s"], a.certificates["localhost"], "old")
        old_inbox = Inbox(old)
        sender = Inbox(await connect(b, "sender"))
        inboxes += [old_inbox, sender]
        await until(lambda: JID.parse("x@localhost/old") in b.server.sessions.remote, 10, "b")
        for n in (1, 2, 3):
            await sender.client.send(message("x@localhost/old", f"m{n}"))
        await until(lambda: len(old_inbox.got) == 3, 10, "x gets three messages")
        await old.send("<a xmlns='urn:xmpp:sm:3' h='2'/>")  # m3 stays unacknowledged
        await asyncio.sleep(0.2)
        old_inbox.task.cancel()
        old.writer.transport.abort()  # the connection drops: node a hibernates the session
        x_old = a.server.sessions.get_local(JID.parse("x@localhost/old"))
        await until(lambda: x_old is not None and x_old.hibernating, 10, "hibernating")
        for n in (4, 5):  # kept for the hibernating session
            await sender.client.send(message("x@localhost/old", f"m{n}"))
        await asyncio.sleep(0.3)

        new = Inbox(await resume_elsewhere(b.ports["c2s"], b.certificates["localhost"], previd, 2))
        inboxes.append(new)
        # Well before the resumption timeout (300 s), m3-m5 reach the new session, once.
        await until(lambda: len(new.got) >= 3, 10, "the unacknowledged messages follow")
        await asyncio.sleep(0.3)
        assert bodies(new) == ["m3", "m4", "m5"]
        assert a.server.sessions.get_local(JID.parse("x@localhost/old")) is None
    finally:
        for inbox in inboxes:
            inbox.stop()


async def test_back_after_its_node_was_killed_later_messages_follow(
    cluster: Callable[[str], dict[str, Any]], tmp_path: Path
) -> None:
    a = await start(config_from_dict(cluster("a"), "test"))
    config_c = cluster("c")
    toml = tmp_path / "c.toml"
    toml.write_text(_toml(config_c), encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-m", "heron", "-c", str(toml), "serve"])  # noqa: ASYNC220 - a node to kill
    inboxes: list[Inbox] = []
    try:
        for user in ("x", "sender"):
            await a.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        port = config_c["listeners"][0]["port"]
        await until(lambda: _listening(port), 60, "node c listens")
        ca = Path(config_c["data_dir"]) / "certs" / "localhost.crt"
        old, previd = await resumable(port, ca, "old")
        sender = Inbox(await connect(a, "sender"))
        inboxes.append(sender)
        await until(lambda: JID.parse("x@localhost/old") in a.server.sessions.remote, 10, "a")
        os.kill(child.pid, signal.SIGKILL)
        await asyncio.to_thread(child.wait, 10)
        old.writer.transport.abort()
        killed = time.monotonic()
        # Node a still takes x for bound on c: the message waits for c, then for x anew.
        await sender.client.send(message("x@localhost/old", "while c is dead"))
        new = Inbox(await resume_elsewhere(a.ports["c2s"], a.certificates["localhost"], previd, 0))
        inboxes.append(new)
        await until(lambda: len(new.got) >= 1, 15, "the message follows")
        assert time.monotonic() - killed < 15
        await sender.client.send(message("x@localhost/new", "after"))
        await until(lambda: len(new.got) >= 2, 10, "and the next one")
        await asyncio.sleep(0.3)
        assert bodies(new) == ["while c is dead", "after"]
        assert {sender_jid for sender_jid, _body in new.got} == {"sender@localhost/r"}
    finally:
        for inbox in inboxes:
            inbox.stop()
        child.kill()
        child.wait(10)
        await a.stop()
