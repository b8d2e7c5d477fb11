"""PEP data moves with `heron copy-storage` (issue 16): a nickname published on SQLite is
read back on PostgreSQL after the copy, and on SQLite again after copying back."""

from __future__ import annotations

from pathlib import Path

import pytest

from heron.app import RunningServer, start
from heron.config import load_config
from tests.engines import fresh_schema_url
from tests.integration.clients import close, login
from tests.integration.test_storage_engines import heron, postgresql, write_config

NICK = "http://jabber.org/protocol/nick"
PLUGINS = ("xep_0004", "xep_0060", "xep_0163", "xep_0172")
PASSWORD = "pw-alice-1"


async def read_nick(running: RunningServer, jid: str) -> str:
    """The nickname (XEP-0172) the account keeps on its own PEP."""
    client = await login(running, jid, PASSWORD, plugins=PLUGINS)
    try:
        result = await client.plugin["xep_0060"].get_items(jid.split("/")[0], NICK, timeout=5)
        (item,) = list(result["pubsub"]["items"])
        nick = item.xml.find(f"{{{NICK}}}nick")
        assert nick is not None
        return str(nick.text)
    finally:
        await close(client)


async def test_pep_data_survives_copy_storage_both_ways(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lite = write_config(tmp_path / "lite" / "heron.toml", "")
    pg = write_config(tmp_path / "pg" / "heron.toml", postgresql(fresh_schema_url(request)))
    back = write_config(tmp_path / "back" / "heron.toml", "")
    made = heron(lite, "adduser", "alice@localhost", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    running = await start(load_config(lite))
    try:
        alice = await login(running, "alice@localhost/lite", PASSWORD, plugins=PLUGINS)
        await alice.plugin["xep_0172"].publish_nick("Alice of SQLite", timeout=5)
        await close(alice)
    finally:
        await running.stop()

    copied = heron(lite, "copy-storage", "--to", str(pg))
    assert copied.returncode == 0, copied.stderr
    counts = dict(line.split()[:2] for line in copied.stdout.splitlines() if line.split())
    assert counts["pubsub_nodes"] == counts["pubsub_items"] == "1"
    running = await start(load_config(pg))
    try:
        assert await read_nick(running, "alice@localhost/pg") == "Alice of SQLite"
        alice = await login(running, "alice@localhost/pg", PASSWORD, plugins=PLUGINS)
        await alice.plugin["xep_0172"].publish_nick("Alice of PostgreSQL", timeout=5)
        await close(alice)
    finally:
        await running.stop()

    home = heron(pg, "copy-storage", "--to", str(back))
    assert home.returncode == 0, home.stderr
    running = await start(load_config(back))
    try:
        assert await read_nick(running, "alice@localhost/back") == "Alice of PostgreSQL"
    finally:
        await running.stop()
