"""The `heron` command, run as a user would, against the data a running server uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from heron.app import start
from heron.config import ServerConfig, load_config
from heron.modules.register.store import SqlInvitationStore
from heron.storage import open_database
from tests.engines import fresh_schema_url
from tests.integration.clients import LoginFailed, close, login

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

[hosts.localhost]
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


def storage_of(config: ServerConfig) -> str:
    """The `[storage]` table that points the command at a running server's database."""
    if config.storage.engine == "sqlite":
        return ""
    return f'\n[storage]\nengine = "postgresql"\nurl = "{config.storage.url}"\npool_size = 2\n'


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "heron.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    return path


async def test_adduser_then_login_and_data_survives_restart(config_file: Path) -> None:
    made = heron(config_file, "adduser", "alice@localhost", "--password-stdin", stdin="pw-1234\n")
    assert made.returncode == 0, made.stderr
    assert "pw-1234" not in made.stdout + made.stderr

    config = load_config(config_file)
    for _restart in range(2):  # the account is still there after a restart
        running = await start(config)
        try:
            client = await login(running, "alice@localhost/cli", "pw-1234")
            await close(client)
        finally:
            await running.stop()

    changed = heron(config_file, "passwd", "alice@localhost", "--password-stdin", stdin="new-pw\n")
    assert changed.returncode == 0, changed.stderr
    running = await start(config)
    try:
        with pytest.raises(LoginFailed):
            await login(running, "alice@localhost/cli", "pw-1234")
        client = await login(running, "alice@localhost/cli", "new-pw")
        await close(client)
    finally:
        await running.stop()

    listed = heron(config_file, "users")
    assert listed.stdout.split() == ["alice@localhost"]
    assert heron(config_file, "deluser", "alice@localhost").returncode == 0
    assert heron(config_file, "users").stdout.split() == []


def test_cli_refusals_exit_non_zero_with_a_message(config_file: Path) -> None:
    assert (
        heron(config_file, "adduser", "bob@localhost", "--password-stdin", stdin="x1\n").returncode
        == 0
    )
    again = heron(config_file, "adduser", "bob@localhost", "--password-stdin", stdin="x1\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    bad = heron(config_file, "adduser", "not a jid@@localhost", "--password-stdin", stdin="x\n")
    assert bad.returncode == 1
    assert "not a valid JID" in bad.stderr
    missing = heron(config_file, "deluser", "ghost@localhost")
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    foreign = heron(config_file, "adduser", "eve@example.net", "--password-stdin", stdin="x\n")
    assert foreign.returncode == 1


def test_bad_config_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[listeners]]\nkind = "c2s"\nhost = "127.0.0.1"\nport = 70000\n[hosts.localhost]\n'
    )
    result = heron(path, "check")
    assert result.returncode == 2
    assert "listeners[0].port" in result.stderr
    unreadable = heron(tmp_path / "missing.toml", "check")
    assert unreadable.returncode == 2


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "heron", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("heron ")


def test_unknown_module_is_refused_at_check(tmp_path: Path) -> None:
    path = tmp_path / "mods.toml"
    path.write_text('[hosts.localhost]\nmodules = ["disco", "telepathy"]\n')
    result = heron(path, "check")
    assert result.returncode == 2
    assert "telepathy" in result.stderr


async def test_admin_commands_on_postgresql(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """invite, reports and quarantine go through their stores on PostgreSQL too."""
    path = tmp_path / "heron.toml"
    url = fresh_schema_url(request)
    path.write_text(
        CONFIG.format(data=tmp_path / "data")
        + f'\n[storage]\nengine = "postgresql"\nurl = "{url}"\npool_size = 2\n'
    )
    invited = heron(path, "invite", "localhost", "--uses", "3")
    assert invited.returncode == 0, invited.stderr
    token = invited.stdout.split()[1]
    assert f"preauth={token}" in invited.stdout
    for command in ("reports", "quarantine"):
        listed = heron(path, command)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout == ""  # nothing reported or held yet, and no error saying so

    config = load_config(path)
    db = await open_database(config.storage, config.data_dir)
    try:
        store = SqlInvitationStore(db)
        assert await store.is_valid(token, "localhost", 0.0)
        assert not await store.is_valid(token, "example.org", 0.0)
    finally:
        await db.close()
