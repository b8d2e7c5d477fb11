"""The storage engines as an operator meets them: PostgreSQL from the config, one-line
errors for a database that cannot be used, `heron migrate`, and `heron copy-storage`
moving a deployment between SQLite and PostgreSQL with users logging in afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from heron.app import start
from heron.config import load_config
from tests.engines import PG_HOST, PG_PORT, PG_USER, fresh_schema_url
from tests.integration.clients import close, login

# The modules whose stores run on both engines; the list grows as stores move over.
MODULES = '["disco", "ping", "version", "time", "vcard", "private", "pubsub"]'

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

    running = await start(load_config(pg))
    try:
        client = await login(running, "alice@localhost/pg", "pw-alice-1")
        await close(client)
    finally:
        await running.stop()

    home = heron(pg, "copy-storage", "--to", str(back))
    assert home.returncode == 0, home.stderr
    running = await start(load_config(back))
    try:
        client = await login(running, "bob@localhost/lite", "pw-bob-22")
        await close(client)
    finally:
        await running.stop()
