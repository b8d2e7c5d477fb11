"""XEP-0215 TURN credentials proven against Debian's coturn.

The test starts its own ``turnserver`` on loopback with ``use-auth-secret`` and the secret
Heron's extdisco module is configured with. A slixmpp user asks Heron for its TURN services;
``turnutils_uclient`` then allocates relays with the issued username and password and
exchanges packets through them. A tampered password is refused by coturn.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from heron.app import RunningServer, start
from heron.jid import JID
from tests.conftest import make_config, services_required
from tests.integration.clients import close, login

PASSWORD = "coturn-interop-pw"
SECRET = "a-turn-secret-shared-with-coturn"
EXTDISCO = "urn:xmpp:extdisco:2"


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if services_required():
            pytest.fail(f"{name} is not installed (.ci/run installs coturn)")
        pytest.skip(f"{name} is not installed (apt-get install coturn)")
    return path


def free_udp_and_tcp_port() -> int:
    for _ in range(100):
        port = random.randint(20000, 30000)
        try:
            with socket.socket(type=socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


@pytest.fixture
async def heron(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, int]]:
    turn_port = free_udp_and_tcp_port()
    options = {
        "services": [f"stun:127.0.0.1:{turn_port}", f"turn:127.0.0.1:{turn_port}?transport=udp"],
        "secret": SECRET,
        "credential_ttl_s": 600,
    }
    config = make_config(
        tmp_path / "heron", hosts={"localhost": {"modules": {"extdisco": options}}}
    )
    running = await start(config)
    await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    try:
        yield running, turn_port
    finally:
        await running.stop()


async def ask(client: Any, xml: str) -> Any:
    iq = client.make_iq_get(ito="localhost")
    iq.append(ET.fromstring(xml))
    return await iq.send(timeout=5)


async def uclient(binary_path: str, port: int, username: str, password: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        binary_path, "-u", username, "-w", password, "-p", str(port),
        "-n", "3", "-y", "-e", "127.0.0.1", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_turn_credentials_are_accepted_by_coturn(
    heron: tuple[RunningServer, int], tmp_path: Path
) -> None:
    turnserver = binary("turnserver")
    uclient_path = binary("turnutils_uclient")
    server, port = heron
    run = tmp_path / "turn"
    run.mkdir()
    relay = random.randint(40000, 60000)
    coturn = await asyncio.create_subprocess_exec(
        turnserver, "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
        "--relay-ip=127.0.0.1", f"--min-port={relay}", f"--max-port={relay + 200}",
        "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=heron.test",
        "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
        f"--db={run / 'turndb'}", f"--pidfile={run / 'turn.pid'}",
        f"--log-file={run / 'turn.log'}", "--simple-log",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    alice = await login(server, "alice@localhost/phone", PASSWORD)
    try:
        info = await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
        assert EXTDISCO in info["disco_info"]["features"]

        answer = await ask(alice, f"<services xmlns='{EXTDISCO}' type='turn'/>")
        (turn,) = answer.xml.find(f"{{{EXTDISCO}}}services")
        assert turn.get("type") == "turn"
        assert turn.get("host") == "127.0.0.1"
        assert turn.get("port") == str(port)
        assert turn.get("transport") == "udp"
        assert turn.get("username").endswith(":alice@localhost")
        assert turn.get("expires", "").endswith("Z")

        everything = await ask(alice, f"<services xmlns='{EXTDISCO}'/>")
        types = [s.get("type") for s in everything.xml.find(f"{{{EXTDISCO}}}services")]
        assert sorted(types) == ["stun", "turn"]

        credentials = await ask(
            alice,
            f"<credentials xmlns='{EXTDISCO}'><service host='127.0.0.1' type='turn'/>"
            "</credentials>",
        )
        (issued,) = credentials.xml.find(f"{{{EXTDISCO}}}credentials")
        assert issued.get("password")

        with pytest.raises(IqError) as err:
            await ask(
                alice,
                f"<credentials xmlns='{EXTDISCO}'><service host='elsewhere' type='turn'/>"
                "</credentials>",
            )
        assert err.value.condition == "item-not-found"

        code, out = 1, ""
        for _attempt in range(20):  # coturn takes a moment to listen
            code, out = await uclient(
                uclient_path, port, turn.get("username"), turn.get("password")
            )
            if code == 0 or "401" in out or "Unauthorized" in out:
                break
            await asyncio.sleep(0.25)
        assert code == 0, out
        assert "Total lost packets 0" in out

        code, out = await uclient(
            uclient_path, port, turn.get("username"), "x" + turn.get("password")
        )
        assert code != 0, out
    finally:
        await close(alice)
        if coturn.returncode is None:
            coturn.terminate()
            try:
                await asyncio.wait_for(coturn.wait(), 10)
            except TimeoutError:
                coturn.kill()
                await coturn.wait()
