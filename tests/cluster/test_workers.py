"""`heron serve --workers 2`: two worker processes share the client ports (SO_REUSEPORT),
clients land on both, users on different workers chat as on two machines, and a worker
killed with SIGKILL is started again by the supervisor and serves again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from heron.app import RunningServer
from heron.cluster.directory import RedisDirectory
from heron.config import config_from_dict
from heron.core.accounts import AccountService
from heron.core.server import load_secret
from heron.jid import JID
from heron.storage import open_database
from heron.storage.accounts import SqlAccountStore
from tests.cluster.test_nodes import PASSWORD, _toml, cluster, inbox, until
from tests.integration.clients import close, login

__all__ = ["cluster"]  # the fixture, shared with test_nodes
USERS = 12


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def listeners_on(port: int) -> int:
    """How many processes listen on 127.0.0.1:`port`."""
    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    return out.count("pid=")


async def make_accounts(table: dict[str, Any], names: list[str]) -> None:
    config = config_from_dict(table, "test")
    db = await open_database(config.storage, config.data_dir)
    try:
        await db.migrate(SqlAccountStore.migrations_for(db.dialect))
        secret = load_secret(Path(table["server_secret_file"]))
        accounts = AccountService(SqlAccountStore(db), secret, config.scram_iterations)
        for name in names:
            await accounts.create(JID.parse(f"{name}@localhost"), PASSWORD)
    finally:
        await db.close()


async def test_two_workers_share_the_port_chat_and_come_back_after_a_kill(
    cluster: Callable[[str], dict[str, Any]], tmp_path: Path
) -> None:
    table = cluster("w")
    toml = tmp_path / "workers.toml"
    toml.write_text(_toml(table), encoding="utf-8")
    names = [f"u{n}" for n in range(USERS)]
    await make_accounts(table, names)
    port = table["listeners"][0]["port"]
    supervisor = subprocess.Popen(  # noqa: ASYNC220 - the process under test
        [sys.executable, "-m", "heron", "-c", str(toml), "serve", "--workers", "2"]
    )
    directory = RedisDirectory.connect(
        table["cluster"]["redis_url"], "test-observer", 3.0, table["cluster"]["prefix"]
    )
    clients: list[Any] = []
    try:
        await until(lambda: listeners_on(port) == 2, 60, "both workers listen on the port")
        view = cast(
            RunningServer,
            SimpleNamespace(
                ports={"c2s": port},
                certificates={"localhost": Path(table["data_dir"]) / "certs" / "localhost.crt"},
            ),
        )
        for name in names:
            clients.append(await login(view, f"{name}@localhost/r", PASSWORD))
        where: dict[str, str] = {}
        for name in names:
            entry = await directory.entry(JID.parse(f"{name}@localhost/r"))
            assert entry is not None, f"{name} is not in the registry"
            where[name] = entry.node
        assert set(where.values()) == {"w-1", "w-2"}, f"the kernel gave one worker all: {where}"

        # Each user on w-1 writes to one on w-2 and back: crossing workers, in order.
        one = [n for n in names if where[n] == "w-1"]
        two = [n for n in names if where[n] == "w-2"]
        by_name = dict(zip(names, clients, strict=True))
        pairs = list(zip(one, two, strict=False))
        boxes = {n: inbox(by_name[n]) for pair in pairs for n in pair}
        for a, b in pairs:
            for n in range(5):
                by_name[a].send_message(mto=f"{b}@localhost/r", mbody=f"{a} {n}", mtype="chat")
                by_name[b].send_message(mto=f"{a}@localhost/r", mbody=f"{b} {n}", mtype="chat")
        for a, b in pairs:
            await until(lambda a=a, b=b: len(boxes[a]) >= 5 and len(boxes[b]) >= 5, 15, "chat")
            assert [str(m["body"]) for m in boxes[b]] == [f"{a} {n}" for n in range(5)]
            assert [str(m["body"]) for m in boxes[a]] == [f"{b} {n}" for n in range(5)]

        # SIGKILL one worker: the supervisor starts it again; it serves again.
        before = children(supervisor.pid)
        assert len(before) == 2
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        await until(
            lambda: len(children(supervisor.pid)) == 2 and victim not in children(supervisor.pid),
            30,
            "the supervisor restarts the killed worker",
        )
        await until(lambda: listeners_on(port) == 2, 60, "the new worker listens")
        assert time.monotonic() - killed < 60
        for client in clients:
            client.abort()
        clients = []
        # Every user logs in again (each lands on one of the two live workers) and a
        # message crosses from the first to the last.
        for name in names:
            clients.append(await login(view, f"{name}@localhost/again", PASSWORD))
        last = inbox(clients[-1])
        # The two may be on different workers: the sender's worker learns of the new session
        # over the bus a moment after it is bound, so ask again until it has.
        deadline = time.monotonic() + 15
        while not last and time.monotonic() < deadline:
            clients[0].send_message(mto=f"{names[-1]}@localhost/again", mbody="back", mtype="chat")
            for _ in range(10):
                if last:
                    break
                await asyncio.sleep(0.1)
        assert last, "no message crossed the workers after the restart"
    finally:
        for client in clients:
            await close(client)
        await directory.close()
        supervisor.send_signal(signal.SIGTERM)
        try:
            code = supervisor.wait(30)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            code = supervisor.wait(10)
    assert code == 0, "the supervisor stops its workers and exits 0 on SIGTERM"
    assert not children(supervisor.pid)


def test_workers_need_a_cluster(tmp_path: Path) -> None:
    toml = tmp_path / "plain.toml"
    toml.write_text(f'data_dir = "{tmp_path / "data"}"\n[hosts.localhost]\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "heron", "-c", str(toml), "serve", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "[cluster]" in done.stderr
    assert "Traceback" not in done.stderr
