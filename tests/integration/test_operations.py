"""Operating a running `heron serve` from the shell: status and sessions over the admin
socket, reload (a new host and listener served, a connected client kept, a bad file refused
with its reason), SIGHUP, kick, and SIGTERM (clients told system-shutdown, a hibernated
session's unacknowledged message kept offline, exit 0 in bound)."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp import ClientXMPP

from heron.ops.run import STOP_BOUND_S

PASSWORD = "ops-password"


def write_config(path: Path, *, extra_host: bool = False, bad: bool = False) -> None:
    text = f"""
data_dir = "{path.parent / "data"}"
admins = ["alice@localhost"]

[[listeners]]
kind = "c2s"
host = "127.0.0.1"
port = 0
"""
    if extra_host:
        text += '\n[[listeners]]\nkind = "c2s_tls"\nhost = "127.0.0.1"\nport = 0\n'
    text += '\n[hosts."localhost"]\n'
    if extra_host:
        text += '\n[hosts."example.net"]\n'
    if bad:
        text += "\n[limits]\nmax_stanza_bytes = 12\n"
    path.write_text(text)


async def heron(config: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "heron",
        "-c",
        str(config),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def status(config: Path) -> dict[str, Any]:
    code, out, err = await heron(config, "status", "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


async def serve_process(config: Path) -> asyncio.subprocess.Process:
    """`heron serve` in a process of its own, once its admin socket answers."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "heron",
        "-c",
        str(config),
        "serve",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(60):
            while True:
                code, _out, _err = await heron(config, "status", "--json")
                if code == 0:
                    return proc
                assert proc.returncode is None, "the server exited"
                await asyncio.sleep(0.3)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Path, asyncio.subprocess.Process]]:
    config = tmp_path / "heron.toml"
    write_config(config)
    for user in ("alice", "carol"):
        code, _out, err = await heron(
            config, "adduser", f"{user}@localhost", "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert code == 0, err
    proc = await serve_process(config)
    try:
        yield config, proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def connect(
    data: Path, jid: str, port: int, *, direct_tls: bool = False, sm: bool = False
) -> ClientXMPP:
    client = ClientXMPP(jid, PASSWORD)
    if sm:
        client.register_plugin("xep_0198")
    client.ca_certs = data / "certs" / f"{jid.split('@')[1].split('/')[0]}.crt"
    client.enable_direct_tls = direct_tls
    client.enable_starttls = not direct_tls
    client.enable_plaintext = False
    client.auto_reconnect = False
    client.register_plugin("xep_0199")
    started = asyncio.ensure_future(client.wait_until("session_start", timeout=30))
    client.connect("127.0.0.1", port)
    await started
    return client


async def test_status_reload_sighup_and_sigterm_of_a_running_server(
    served: tuple[Path, asyncio.subprocess.Process],
) -> None:
    config, proc = served
    data = config.parent / "data"
    sock = data / "admin.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    first = await status(config)
    assert list(first["hosts"]) == ["localhost"]
    alice = await connect(data, "alice@localhost/phone", first["listeners"]["c2s"])
    try:
        now = await status(config)
        assert now["sessions"] == 1
        assert now["hosts"]["localhost"] == {"tcp": 1}
        assert now["memory_bytes"] > 0
        code, out, _err = await heron(config, "sessions", "alice@localhost")
        assert code == 0
        assert "alice@localhost/phone" in out

        # A new host and a new listener, served without a restart; alice stays online.
        write_config(config, extra_host=True)
        code, out, err = await heron(config, "reload")
        assert code == 0, err
        assert "example.net: host added" in out
        assert "listener c2s_tls" in out
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=15)
        code, _out, err = await heron(
            config, "adduser", "bob@example.net", "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert code == 0, err
        after = await status(config)
        assert sorted(after["hosts"]) == ["example.net", "localhost"]
        bob = await connect(
            data, "bob@example.net/x", after["listeners"]["c2s_tls"], direct_tls=True
        )
        await bob.plugin["xep_0199"].ping(jid="example.net", timeout=15)
        bob.abort()

        # A file that does not validate: refused with the reason, the server keeps going.
        write_config(config, extra_host=True, bad=True)
        code, _out, err = await heron(config, "reload")
        assert code == 1
        assert "limits.max_stanza_bytes" in err
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=15)
        assert sorted((await status(config))["hosts"]) == ["example.net", "localhost"]

        # SIGHUP does the same as `heron reload`: the host and the listener go away again.
        write_config(config)
        proc.send_signal(signal.SIGHUP)
        async with asyncio.timeout(60):
            while True:
                now = await status(config)
                if "example.net" not in now["hosts"] and "c2s_tls" not in now["listeners"]:
                    break
                await asyncio.sleep(0.2)
        with pytest.raises(ConnectionRefusedError):  # the Direct TLS port is closed
            await asyncio.open_connection("127.0.0.1", after["listeners"]["c2s_tls"])
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=15)

        # heron kick ends one session (a full JID) and leaves the others.
        laptop = await connect(data, "alice@localhost/laptop", first["listeners"]["c2s"])
        gone = asyncio.ensure_future(laptop.wait_until("disconnected", timeout=60))
        code, out, _err = await heron(config, "kick", "alice@localhost/laptop")
        assert code == 0
        assert "ended 1 session" in out
        await gone
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=15)

        # Carol's phone loses its network: her session waits to be resumed, and a message
        # arrives for it that she never acknowledges.
        carol = await connect(data, "carol@localhost/phone", first["listeners"]["c2s"], sm=True)
        carol.send_presence()
        await carol.plugin["xep_0199"].ping(jid="localhost", timeout=15)
        carol.abort()
        async with asyncio.timeout(60):
            while True:
                code, out, _err = await heron(config, "sessions", "carol@localhost", "--json")
                if code == 0 and any(s["hibernating"] for s in json.loads(out)):
                    break
                await asyncio.sleep(0.2)
        alice.send_message(mto="carol@localhost", mbody="sent before SIGTERM", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=15)

        # SIGTERM: alice is told system-shutdown, the process exits 0 within the bound.
        told = asyncio.ensure_future(alice.wait_until("stream_error", timeout=60))
        proc.send_signal(signal.SIGTERM)
        assert "system-shutdown" in str(await told)
        assert await asyncio.wait_for(proc.wait(), STOP_BOUND_S + 10) == 0
        assert not sock.exists()
    finally:
        alice.abort()
    code, _out, err = await heron(config, "status")
    assert code == 1
    assert "no running server" in err

    # Carol's unacknowledged message was kept: offline storage, delivered at her next login.
    proc = await serve_process(config)
    try:
        again = await status(config)
        carol = await connect(data, "carol@localhost/laptop", again["listeners"]["c2s"])
        got = asyncio.ensure_future(carol.wait_until("message", timeout=30))
        carol.send_presence()
        assert (await got)["body"] == "sent before SIGTERM"
        carol.abort()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), STOP_BOUND_S + 10) == 0
