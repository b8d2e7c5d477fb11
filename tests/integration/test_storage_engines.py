"""The storage engines as an operator meets them: PostgreSQL from the config, one-line
errors for a database that cannot be used, `heron migrate`, and `heron copy-storage`
moving a deployment between SQLite and PostgreSQL with users logging in afterwards."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID as SJID
from slixmpp import ClientXMPP

from heron.app import RunningServer, start
from heron.config import ServerConfig, load_config
from heron.core.server import Server
from heron.jid import JID
from heron.modules import AVAILABLE
from heron.modules.antispam import SqlQuarantineStore
from heron.modules.blocking.store import Change, Report, SqlBlockingStore
from heron.modules.private import SqlPrivateStore
from heron.modules.push import Registration, SqlPushStore
from heron.modules.register.store import SqlInvitationStore
from heron.modules.upload.store import Slot, SqlUploadStore
from heron.modules.vcard import SqlVcardStore
from heron.storage import open_database
from heron.storage.db import Database
from tests.engines import PG_HOST, PG_PORT, PG_USER, fresh_schema_url
from tests.integration.clients import close, login

NOTES = ["before the copy 0", "before the copy 1", "before the copy 2"]

# The modules whose stores run on both engines; the list grows as stores move over.
MODULES = (
    '["disco", "ping", "version", "time", "roster", "offline", "mam", "vcard", "private",'
    ' "blocking", "antispam", "push", "register", "upload", "pubsub", "muc"]'
)

CONFIG = """
data_dir = "{data}"

[[listeners]]
kind = "c2s"
host = "127.0.0.1"
port = 0

[[listeners]]
kind = "c2s_tls"
host = "127.0.0.1"
port = 0

{storage}

[hosts.localhost]
modules = {modules}
"""


def heron(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heron", "-c", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_config(path: Path, storage: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        CONFIG.format(data=path.parent / "data", storage=storage, modules=MODULES),
        encoding="utf-8",
    )
    return path


def postgresql(url: str) -> str:
    return f'[storage]\nengine = "postgresql"\nurl = "{url}"\npool_size = 4'


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"postgresql://{PG_USER}@127.0.0.1:1/heron", "storage.url"),  # nothing listens
        (f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/no_such_db_here", "storage.url"),
        (f"postgresql://no_such_role_here@{PG_HOST}:{PG_PORT}/postgres", "storage.url"),
    ],
)
def test_unusable_database_stops_check_and_serve_with_one_line(
    tmp_path: Path, url: str, says: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("pg_database")  # skips (or fails in CI) without PostgreSQL
    config = write_config(tmp_path / "heron.toml", postgresql(url))
    for command in ("check", "serve"):
        result = heron(config, command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        # One line from heron (asyncio's debug mode may add its own slow-callback notes).
        lines = [line for line in result.stderr.splitlines() if line.startswith("heron:")]
        assert len(lines) == 1, result.stderr
        assert says in lines[0]
        assert "Traceback" not in result.stderr


def test_bad_url_is_refused_at_load_naming_the_key(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "heron.toml", '[storage]\nengine = "postgresql"\nurl = "mysql://x@y/z"'
    )
    result = heron(config, "check")
    assert result.returncode == 2
    assert "storage.url" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_then_serve_on_postgresql(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config = write_config(tmp_path / "heron.toml", postgresql(fresh_schema_url(request)))
    first = heron(config, "migrate")
    assert first.returncode == 0, first.stderr
    assert "postgresql" in first.stdout
    again = heron(config, "migrate")  # nothing left to do, and saying so is no error
    assert again.returncode == 0, again.stderr
    checked = heron(config, "check")
    assert checked.returncode == 0, checked.stderr


async def test_copy_storage_both_ways_and_users_log_in(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lite = write_config(tmp_path / "lite" / "heron.toml", "")
    pg = write_config(tmp_path / "pg" / "heron.toml", postgresql(fresh_schema_url(request)))
    back = write_config(tmp_path / "back" / "heron.toml", "")
    for user, password in (("alice", "pw-alice-1"), ("bob", "pw-bob-22")):
        made = heron(lite, "adduser", f"{user}@localhost", "--password-stdin", stdin=password)
        assert made.returncode == 0, made.stderr
    await befriend_and_write(lite)

    copied = heron(lite, "copy-storage", "--to", str(pg))
    assert copied.returncode == 0, copied.stderr
    assert "users" in copied.stdout
    assert "copied" in copied.stdout
    counts = dict(
        line.split()[:2] for line in copied.stdout.splitlines() if line.split()[:1] != ["copied"]
    )
    assert counts["users"] == "2"

    # The source is untouched; a second copy into a non-empty target is refused…
    assert heron(lite, "users").stdout.split() == ["alice@localhost", "bob@localhost"]
    refused = heron(lite, "copy-storage", "--to", str(pg))
    assert refused.returncode != 0
    assert "--force" in refused.stderr
    # …unless forced, which replaces rather than doubles.
    forced = heron(lite, "copy-storage", "--to", str(pg), "--force")
    assert forced.returncode == 0, forced.stderr
    assert heron(pg, "users").stdout.split() == ["alice@localhost", "bob@localhost"]

    assert counts["roster_items"] == "2"  # Bob in Alice's roster, her request in Bob's
    assert counts["offline_messages"] == "3"
    assert counts["mam_messages"] == "6"  # each note in both archives

    running = await start(load_config(pg))
    try:
        await sees_roster_archive_and_offline(running, "after the copy")
    finally:
        await running.stop()

    home = heron(pg, "copy-storage", "--to", str(back))
    assert home.returncode == 0, home.stderr
    assert "mam_messages 8" in " ".join(home.stdout.split())  # and the note made on PG
    running = await start(load_config(back))
    try:
        client = await login(running, "bob@localhost/lite", "pw-bob-22", plugins=("xep_0313",))
        try:
            assert await archived(client, "alice@localhost") == [*NOTES, "after the copy"]
        finally:
            await close(client)
    finally:
        await running.stop()


async def archived(client: ClientXMPP, peer: str) -> list[str]:
    return [
        str(m["mam_result"]["forwarded"]["stanza"]["body"])
        async for m in client.plugin["xep_0313"].iterate(with_jid=SJID(peer), rsm={"max": 2})
    ]


async def befriend_and_write(config: Path) -> None:
    """Alice and Bob in each other's roster; three notes from Alice while Bob is away
    (kept offline for him, archived for both)."""
    running = await start(load_config(config))
    try:
        alice = await login(running, "alice@localhost/a", "pw-alice-1", plugins=("xep_0313",))
        try:
            alice.update_roster(SJID("bob@localhost"), name="Bob")
            await alice.get_roster(timeout=5)
            alice.send_presence(pto="bob@localhost", ptype="subscribe")
            for body in NOTES:
                alice.send_message(mto="bob@localhost", mbody=body, mtype="chat")
            assert await archived(alice, "bob@localhost") == NOTES  # after the notes, in order
        finally:
            await close(alice)
    finally:
        await running.stop()


async def sees_roster_archive_and_offline(running: RunningServer, new_note: str) -> None:
    """Bob gets the notes kept for him, sees Alice in his roster and the notes in his
    archive; a note written now lands after the copied ones."""
    bob = await login(running, "bob@localhost/pg", "pw-bob-22", plugins=("xep_0313",))
    try:
        received: list[str] = []
        done = asyncio.get_running_loop().create_future()

        def on_message(msg: Any) -> None:
            received.append(str(msg["body"]))
            if len(received) == len(NOTES) and not done.done():
                done.set_result(None)

        bob.add_event_handler("message", on_message)
        await bob.get_roster(timeout=5)
        bob.send_presence()
        await asyncio.wait_for(done, 10)
        assert received == NOTES
        alice = await login(running, "alice@localhost/pg", "pw-alice-1", plugins=("xep_0313",))
        try:
            await alice.get_roster(timeout=5)
            assert alice.client_roster["bob@localhost"]["name"] == "Bob"
            alice.send_message(mto="bob@localhost", mbody=new_note, mtype="chat")
            assert await archived(alice, "bob@localhost") == [*NOTES, new_note]
        finally:
            await close(alice)
        assert await archived(bob, "alice@localhost") == [*NOTES, new_note]
    finally:
        await close(bob)


ALICE = JID.parse("alice@localhost")
BOB = JID.parse("bob@localhost")
EVE = JID.parse("eve@example.net")
# Rows each account gets in every table of the modules above, and the tables' totals.
PER_ACCOUNT = {
    "vcards": 1,
    "private_xml": 2,
    "blocklist": 1,
    "quarantine": 2,
    "push_registrations": 1,
    "upload_files": 1,
}


async def opened(path: Path) -> tuple[ServerConfig, Database]:
    config = load_config(path)
    db = await open_database(config.storage, config.data_dir)
    await db.migrate(Server(config, AVAILABLE).migrations(db.dialect))
    return config, db


async def fill(db: Database, account: JID) -> None:
    """What a user of these modules leaves behind, written through their stores."""
    await SqlVcardStore(db).put(account, f"<vCard xmlns='vcard-temp'><FN>{account}</FN></vCard>")
    await SqlPrivateStore(db).put(
        account, [("urn:a", "a", "<a xmlns='urn:a'/>"), ("urn:b", "b", "<b xmlns='urn:b'/>")]
    )
    report = Report(str(account), str(EVE), "urn:xmpp:reporting:spam", "ads ü", ("x m-1",), 9.0)
    await SqlBlockingStore(db).change(account, Change(add=[str(EVE)], reports=[report]))
    for n in range(2):
        await SqlQuarantineStore(db).hold(account, EVE, 10.0 + n, f"<message id='{n}'/>", 10)
    await SqlPushStore(db).enable(account, Registration("push.example", "n", "<x/>"), 5)
    slot = Slot(f"slot-{account.local}", str(account), "a.png", 4, "image/png", 5.0, True)
    await SqlUploadStore(db).add("upload.localhost", slot)


async def counts(db: Database, account: JID) -> dict[str, int]:
    found = {}
    for table in PER_ACCOUNT:
        if table == "upload_files":
            sql, args = "SELECT COUNT(*) FROM upload_files WHERE owner = ?", [str(account)]
        else:
            sql = f"SELECT COUNT(*) FROM {table} WHERE domain = ? AND username = ?"  # noqa: S608
            args = [account.domain, account.local or ""]
        found[table] = int(await db.fetchval(sql, *args))
    return found


async def test_module_data_is_copied_read_by_the_cli_and_cascades_on_postgresql(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lite = write_config(tmp_path / "lite" / "heron.toml", "")
    pg = write_config(tmp_path / "pg" / "heron.toml", postgresql(fresh_schema_url(request)))
    for user in ("alice", "bob"):
        made = heron(lite, "adduser", f"{user}@localhost", "--password-stdin", stdin="pw-12345")
        assert made.returncode == 0, made.stderr
    _config, db = await opened(lite)
    try:
        for account in (ALICE, BOB):
            await fill(db, account)
    finally:
        await db.close()
    assert heron(lite, "invite", "localhost", "--uses", "2").returncode == 0

    copied = heron(lite, "copy-storage", "--to", str(pg))
    assert copied.returncode == 0, copied.stderr
    copied_rows = dict(line.split()[:2] for line in copied.stdout.splitlines()[:-1])
    two_accounts = {table: 2 * rows for table, rows in PER_ACCOUNT.items()}
    for table, rows in (two_accounts | {"spam_reports": 2, "invitations": 1}).items():
        assert copied_rows[table] == str(rows), table

    # The admin's commands read (and write) them on PostgreSQL.
    reports = heron(pg, "reports")
    assert reports.returncode == 0, reports.stderr
    assert reports.stdout.count("reported eve@example.net (urn:xmpp:reporting:spam)") == 2
    assert "'ads ü'" in reports.stdout
    held = heron(pg, "quarantine", "localhost")
    assert held.returncode == 0, held.stderr
    assert held.stdout.count("for alice@localhost from eve@example.net") == 2
    invited = heron(pg, "invite", "localhost")
    assert invited.returncode == 0, invited.stderr
    token = invited.stdout.split()[1]

    _config, db = await opened(pg)
    try:
        assert await SqlInvitationStore(db).is_valid(token, "localhost", 0.0)
        assert await SqlVcardStore(db).get(ALICE) == (
            "<vCard xmlns='vcard-temp'><FN>alice@localhost</FN></vCard>"
        )
        # Identity columns were moved past the copied rows: new rows take new ids.
        await SqlQuarantineStore(db).hold(BOB, EVE, 20.0, "<message id='new'/>", 10)
        report = Report(str(BOB), "x@y", "urn:xmpp:reporting:abuse", "", (), 21.0)
        await SqlBlockingStore(db).change(BOB, Change(reports=[report]))
        assert [r.reported for r in await SqlBlockingStore(db).reports("localhost")][-1] == "x@y"
    finally:
        await db.close()

    # And back to SQLite: the keys hold there too, and new rows take new ids.
    back = write_config(tmp_path / "back" / "heron.toml", "")
    home = heron(pg, "copy-storage", "--to", str(back))
    assert home.returncode == 0, home.stderr
    _config, db = await opened(back)
    try:
        assert await counts(db, ALICE) == PER_ACCOUNT
        await SqlQuarantineStore(db).hold(ALICE, EVE, 30.0, "<message id='back'/>", 10)
        assert await SqlQuarantineStore(db).release(ALICE, EVE) == [
            "<message id='0'/>",
            "<message id='1'/>",
            "<message id='back'/>",
        ]
    finally:
        await db.close()

    # Deleting an account on PostgreSQL takes every row it owned, and only those.
    deleted = heron(pg, "deluser", "alice@localhost")
    assert deleted.returncode == 0, deleted.stderr
    _config, db = await opened(pg)
    try:
        assert await counts(db, ALICE) == dict.fromkeys(PER_ACCOUNT, 0) | {"upload_files": 1}
        assert await counts(db, BOB) == PER_ACCOUNT | {"quarantine": 3}
        # An upload names its owner by JID: the next sweep takes it (and its file).
        assert [s.slot for s in await SqlUploadStore(db).expired("upload.localhost", 0, 0)] == [
            "slot-alice"
        ]
        assert len(await SqlBlockingStore(db).reports("localhost")) == 3  # reports stay
    finally:
        await db.close()
