"""When an account is deleted, what the roster, offline and archive modules kept for it
goes too (on both engines), and `heron deluser` does the same offline."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from slixmpp import JID as SJID

from heron.app import RunningServer
from heron.jid import JID
from heron.storage.db import Database
from tests.integration.clients import close, login

PASSWORD = "removal-password"
pytestmark = pytest.mark.both_engines
TABLES = ("roster_items", "roster_versions", "offline_messages", "mam_messages", "mam_prefs")


async def rows_of(db: Database, username: str) -> dict[str, int]:
    return {
        table: int(
            await db.fetchval(
                f"SELECT COUNT(*) FROM {table} WHERE username = ?",  # noqa: S608
                username,
            )
        )
        for table in TABLES
    }


async def test_deleting_an_account_forgets_roster_offline_messages_and_archive(
    server: RunningServer,
) -> None:
    for user in ("alice", "bob"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    alice = await login(server, "alice@localhost/a", PASSWORD, plugins=("xep_0313",))
    try:
        alice.update_roster(SJID("bob@localhost"), name="Bob")
        await alice.get_roster(timeout=5)
        for n in range(2):
            alice.send_message(mto="bob@localhost", mbody=f"note {n}", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)  # all handled
    finally:
        await close(alice)
    bob = await login(server, "bob@localhost/b", PASSWORD)
    try:
        bob.update_roster(SJID("alice@localhost"), name="Alice")
        await bob.get_roster(timeout=5)
    finally:
        await close(bob)
    db = server.server.db
    assert db is not None
    modules = server.server.managers["localhost"].modules
    await modules["mam"].flush()  # type: ignore[attr-defined]
    await modules["mam"].store.set_mode("localhost", "bob", "always")  # type: ignore[attr-defined]
    before = await rows_of(db, "bob")
    assert before["offline_messages"] == 2
    assert before["mam_messages"] == 2
    assert before["roster_items"] == 1

    bare = JID.parse("bob@localhost")
    await server.server.accounts.delete(bare)
    await server.server.registries["localhost"].forget_account(bare)
    assert await rows_of(db, "bob") == dict.fromkeys(TABLES, 0)
    alice_rows = await rows_of(db, "alice")  # the other account keeps its own
    assert alice_rows["mam_messages"] == 2
    assert alice_rows["roster_items"] == 1


def test_deluser_forgets_the_stored_data_too(tmp_path: Path) -> None:
    config = tmp_path / "heron.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[[listeners]]\nkind = "c2s"\nhost = "127.0.0.1"\nport = 0\n'
        '[hosts.localhost]\nmodules = ["roster", "offline", "mam"]\n',
        encoding="utf-8",
    )

    def heron(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "heron", "-c", str(config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert heron("adduser", "bob@localhost", "--password-stdin", stdin="pw-bob-1").returncode == 0
    assert heron("migrate").returncode == 0
    with sqlite3.connect(tmp_path / "data" / "heron.db") as conn:
        for table, columns, values in (
            ("roster_items", "domain, username, contact", "'localhost', 'bob', 'a@localhost'"),
            ("offline_messages", "domain, username, xml", "'localhost', 'bob', '<message/>'"),
            (
                "mam_messages",
                "archive_id, domain, username, with_jid, at, xml",
                "'x1', 'localhost', 'bob', 'a@localhost', 1.0, '<message/>'",
            ),
        ):
            conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({values})")  # noqa: S608
    deleted = heron("deluser", "bob@localhost")
    assert deleted.returncode == 0, deleted.stderr
    with sqlite3.connect(tmp_path / "data" / "heron.db") as conn:
        for table in ("roster_items", "offline_messages", "mam_messages"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)  # noqa: S608
