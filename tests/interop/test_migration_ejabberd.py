"""Moving in from ejabberd (Debian's 23.01): accounts, a roster, a vCard and an offline
message made with ejabberdctl, exported with `ejabberdctl export_piefxis`, imported with
`heron import`; the users log in with their old passwords and find it all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.app import start
from heron.config import config_from_dict
from tests.integration.clients import close, login
from tests.interop.test_ejabberd_federation import ejabberdctl_binary, free_port

DOMAIN = "ej.example"

CONFIG = """
loglevel: info
log_rotate_count: 0
hosts:
  - {domain}
certfiles:
  - "{pem}"
listen:
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
auth_password_format: scram
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_roster: {{}}
  mod_vcard: {{}}
  mod_offline: {{}}
  mod_private: {{}}
  mod_admin_extra: {{}}
"""

CTL_CONFIG = """
ERLANG_NODE={node}@localhost
ERL_DIST_PORT={dist}
INET_DIST_INTERFACE=127.0.0.1
EXEC_CMD=as_current_user
ERL_OPTIONS="-setcookie {cookie}"
"""


async def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{argv[-3:]}: {text}"
    return text


@pytest.fixture
async def ejabberd_export(tmp_path: Path) -> AsyncIterator[Path]:
    """A folder holding what export_piefxis wrote for a node the test ran."""
    binary = ejabberdctl_binary()
    node = tmp_path / "ejabberd"
    for sub in ("spool", "logs", "export"):
        (node / sub).mkdir(parents=True)
    key, cert = node / "key.pem", node / "cert.pem"
    await run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", f"/CN={DOMAIN}"]
    )  # fmt: skip
    pem = node / "ejabberd.pem"
    pem.write_text(cert.read_text() + key.read_text())
    pem.chmod(0o600)
    c2s, dist = free_port(), free_port()
    (node / "ejabberd.yml").write_text(CONFIG.format(domain=DOMAIN, pem=pem, c2s=c2s))
    (node / "ejabberdctl.cfg").write_text(
        CTL_CONFIG.format(
            node=f"heron-pie-{os.getpid()}-{dist}", dist=dist, cookie=secrets.token_hex(16)
        )
    )
    (node / "inetrc").write_text("{lookup, [file]}.\n")
    ctl = [
        binary, "--config-dir", str(node), "--config", str(node / "ejabberd.yml"),
        "--ctl-config", str(node / "ejabberdctl.cfg"), "--spool", str(node / "spool"),
        "--logs", str(node / "logs"),
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(node)}
    process = await asyncio.create_subprocess_exec(
        *ctl, "foreground", env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            while True:
                with contextlib.suppress(OSError):
                    _r, writer = await asyncio.open_connection("127.0.0.1", c2s)
                    writer.close()
                    break
                assert process.returncode is None, "ejabberd did not start"
                await asyncio.sleep(0.2)
        for user, password in (("alice", "alice-ej-pw"), ("bob", "bob-ej-pw")):
            await run([*ctl, "register", user, DOMAIN, password], env)
        await run(
            [*ctl, "add_rosteritem", "alice", DOMAIN, "bob", DOMAIN, "Bob", "Friends", "both"],
            env,
        )
        await run([*ctl, "set_vcard", "alice", DOMAIN, "FN", "Alice from ejabberd"], env)
        await run(
            [*ctl, "send_message", "chat", f"bob@{DOMAIN}", f"alice@{DOMAIN}", "", "kept"], env
        )
        await run([*ctl, "export_piefxis", str(node / "export")], env)
        yield node / "export"
    finally:
        with contextlib.suppress(AssertionError, TimeoutError, OSError):
            await run([*ctl, "stop"], env)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            await process.wait()


async def test_ejabberd_users_move_in_with_passwords_roster_vcard_and_offline_messages(
    ejabberd_export: Path, tmp_path: Path
) -> None:
    files = sorted(p.name for p in ejabberd_export.iterdir())  # noqa: ASYNC240 - two files
    assert len(files) == 2  # the server-data file and the host file it includes
    heron_data = tmp_path / "heron-data"
    heron_cfg = tmp_path / "heron.toml"
    heron_cfg.write_text(f'data_dir = "{heron_data}"\n[hosts."{DOMAIN}"]\n')
    out = await run(
        [sys.executable, "-m", "heron", "-c", str(heron_cfg), "import", str(ejabberd_export)]
    )
    assert "2 imported, 0 failed" in out
    config = config_from_dict(
        {
            "data_dir": str(heron_data),
            "listeners": [{"kind": "c2s", "host": "127.0.0.1", "port": 0}],
            "hosts": {DOMAIN: {}},
        },
        "test",
    )
    running = await start(config)
    try:
        alice = await login(running, f"alice@{DOMAIN}/x", "alice-ej-pw", mech="SCRAM-SHA-1")
        try:
            roster = await alice.get_roster(timeout=5)
            bob = roster["roster"]["items"][f"bob@{DOMAIN}"]
            assert bob["subscription"] == "both"
            assert bob["groups"] == ["Friends"]
            alice.register_plugin("xep_0054")
            card = await alice.plugin["xep_0054"].get_vcard(f"alice@{DOMAIN}", timeout=5)
            assert card["vcard_temp"]["FN"] == "Alice from ejabberd"
            got = asyncio.ensure_future(alice.wait_until("message", timeout=5))
            alice.send_presence()
            assert (await got)["body"] == "kept"
        finally:
            await close(alice)
        other = await login(running, f"bob@{DOMAIN}/y", "bob-ej-pw", mech="SCRAM-SHA-1")
        await close(other)
    finally:
        await running.stop()
