"""A crash (kill -9, not a stop) under write load, on each storage engine: the database
opens again, nothing in it is corrupt, and what was lost is within the bound the README
states (the archive writes in batches of at most 50 ms; a message delivered well before
the crash is in both archives)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID as SJID

from heron.config import load_config
from tests.engines import fresh_schema_url
from tests.integration.clients import close, login

PASSWORD = "crash-test-pw"
SETTLED_S = 1.0  # delivered this long before the kill: must be archived (bound: 50 ms)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Subprocess:
    """What tests/integration/clients.login needs of a server: its ports and certificate."""

    config: Path
    ports: dict[str, int]
    certificates: dict[str, Path] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.config.parent / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "heron", "-c", str(self.config), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.config.parent / "serve.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.ports["c2s"]), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the server did not start listening")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def heron(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heron", "-c", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_config(root: Path, engine: str, url: str) -> Subprocess:
    ports = {"c2s": free_port(), "c2s_tls": free_port()}
    storage = "" if engine == "sqlite" else f'[storage]\nengine = "postgresql"\nurl = "{url}"'
    root.mkdir(parents=True, exist_ok=True)
    config = root / "heron.toml"
    config.write_text(
        f"""
data_dir = "{root / "data"}"
[[listeners]]
kind = "c2s"
host = "127.0.0.1"
port = {ports["c2s"]}
[[listeners]]
kind = "c2s_tls"
host = "127.0.0.1"
port = {ports["c2s_tls"]}
[logging]
level = "WARNING"
{storage}
[hosts.localhost]
""",
        encoding="utf-8",
    )
    return Subprocess(config, ports, {"localhost": root / "data" / "certs" / "localhost.crt"})


async def archived(client: Any, peer: str) -> list[str]:
    return [
        str(m["mam_result"]["forwarded"]["stanza"]["body"])
        async for m in client.plugin["xep_0313"].iterate(with_jid=SJID(peer), rsm={"max": 250})
    ]


async def archive_is_consistent(url: str) -> None:
    """Every archived row is whole, and row ids follow the archive's time order."""
    import asyncpg

    base, _, query = url.partition("?search_path=")
    conn = await asyncpg.connect(base, server_settings={"search_path": query})
    try:
        rows = await conn.fetch("SELECT id, at, xml FROM mam_messages ORDER BY id")
    finally:
        await conn.close()
    assert rows, "nothing was archived before the kill"
    assert all(str(r["xml"]).endswith("</message>") for r in rows)
    stamps = [float(r["at"]) for r in rows]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_kill_9_under_archive_load(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = fresh_schema_url(request) if engine == "postgresql" else ""
    server = write_config(tmp_path, engine, url)
    for user in ("alice", "bob"):
        made = heron(
            server.config, "adduser", f"{user}@localhost", "--password-stdin", stdin=PASSWORD
        )
        assert made.returncode == 0, made.stderr
    server.start()
    try:
        alice = await login(server, "alice@localhost/a", PASSWORD, plugins=("xep_0313",))  # type: ignore[arg-type]
        bob = await login(server, "bob@localhost/b", PASSWORD, plugins=("xep_0313",))  # type: ignore[arg-type]
        bob.send_presence()
        delivered: dict[str, float] = {}
        bob.add_event_handler(
            "message", lambda m: delivered.setdefault(str(m["body"]), time.monotonic())
        )
        await asyncio.sleep(0.5)
        sent = 0
        while len(delivered) < 1500 and sent < 20000:  # write load until the kill
            for _ in range(50):
                alice.send_message(mto="bob@localhost", mbody=f"n{sent:05d}", mtype="chat")
                sent += 1
            await asyncio.sleep(0.02)
        server.kill()
        killed_at = time.monotonic()
        alice.abort()
        bob.abort()

        if engine == "sqlite":  # nothing corrupt: SQLite's own check of every page and index
            with sqlite3.connect(tmp_path / "data" / "heron.db") as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        else:  # nothing half-written: every batch is one COPY, whole or absent
            await archive_is_consistent(url)
        server.start()
        alice = await login(server, "alice@localhost/a2", PASSWORD, plugins=("xep_0313",))  # type: ignore[arg-type]
        try:
            kept = set(await archived(alice, "bob@localhost"))
        finally:
            await close(alice)
        settled = {body for body, at in delivered.items() if at < killed_at - SETTLED_S}
        assert settled, "no message was delivered long enough before the kill"
        assert settled <= kept, f"lost {len(settled - kept)} settled messages"
        assert kept <= {f"n{i:05d}" for i in range(sent)}  # nothing invented or mangled
    finally:
        server.stop()
    # Same database, a clean start, with the config as the operator wrote it.
    assert load_config(server.config).storage.engine == engine
