"""Rooms move with `heron copy-storage` (issue 16): a persistent room kept on SQLite, with
its name, members-only setting, owner and subject, is there on PostgreSQL after the copy,
and its owner joins it as owner."""

from __future__ import annotations

from pathlib import Path

import pytest

from heron.app import start
from heron.config import load_config
from heron.jid import JID
from heron.modules.muc.config import RoomConfig
from heron.modules.muc.room import RoomRecord
from heron.modules.muc.store import SqlRoomStore
from heron.storage import open_database
from tests.engines import fresh_schema_url
from tests.integration.clients import close, login
from tests.integration.test_storage_engines import heron, postgresql, write_config

PASSWORD = "pw-alice-1"
ROOM = JID.parse("lounge@conference.localhost")
ALICE = JID.parse("alice@localhost")


async def test_a_persistent_room_survives_copy_storage(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lite = write_config(tmp_path / "lite" / "heron.toml", "")
    pg = write_config(tmp_path / "pg" / "heron.toml", postgresql(fresh_schema_url(request)))
    made = heron(lite, "adduser", "alice@localhost", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    config = load_config(lite)
    db = await open_database(config.storage, config.data_dir)
    try:
        await db.migrate(SqlRoomStore.migrations_for(db.dialect))
        room = RoomConfig(name="The Lounge", persistent=True, members_only=True)
        await SqlRoomStore(db).save(RoomRecord(ROOM, room, {ALICE: "owner"}, {}, "Tea at five", ""))
    finally:
        await db.close()

    copied = heron(lite, "copy-storage", "--to", str(pg))
    assert copied.returncode == 0, copied.stderr
    counts = dict(line.split()[:2] for line in copied.stdout.splitlines() if line.split())
    assert counts["muc_rooms"] == "1"

    running = await start(load_config(pg))
    try:
        alice = await login(running, "alice@localhost/pg", PASSWORD, plugins=("xep_0045",))
        try:
            info = await alice.plugin["xep_0030"].get_info(jid=str(ROOM), timeout=5)
            identities = info["disco_info"]["identities"]
            assert any(name == "The Lounge" for _c, _t, _l, name in identities)
            features = info["disco_info"]["features"]
            assert "muc_persistent" in features
            assert "muc_membersonly" in features
            own, subject, _occupants, _history = await alice.plugin["xep_0045"].join_muc_wait(
                str(ROOM), "Alice", timeout=5
            )
            assert own["muc"]["affiliation"] == "owner"
            assert subject["subject"] == "Tea at five"
        finally:
            await close(alice)
    finally:
        await running.stop()
