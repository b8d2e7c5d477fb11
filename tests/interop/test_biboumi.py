"""A real gateway: Debian's biboumi (XMPP-IRC) attached to Heron as an external component.

The test starts its own ngIRCd and biboumi, each with a config of its own in a temporary
directory, all on loopback. ngIRCd listens on port 6667 of an address of 127.0.0.0/8 picked
for this run (biboumi tries 6697 and 6670 with TLS first, then 6667 in clear), so a
channel's JID names that address: ``#room%127.a.b.c@biboumi.localhost``. A slixmpp user
joins the channel through biboumi (XEP-0045 on the gateway's side) and exchanges messages
with a small IRC client written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from heron.app import RunningServer, start
from heron.jid import JID
from tests.conftest import make_config, services_required
from tests.integration.clients import close, login

PASSWORD = "biboumi-interop-pw"
SECRET = "biboumi-component-secret"
GATEWAY = "biboumi.localhost"
CHANNEL = "#heron"

NGIRCD_CONF = """[Global]
Name = irc.heron.test
Info = Heron interop test
Listen = {address}
Ports = 6667
PidFile = {run}/ngircd.pid
MotdPhrase = Heron test server
ServerUID = {uid}
ServerGID = {gid}
[Limits]
MaxConnectionsIP = 0
ConnectRetry = 5
[Options]
PAM = no
Ident = no
DNS = no
"""

BIBOUMI_CONF = """hostname={gateway}
password={secret}
xmpp_server_ip=127.0.0.1
port={port}
admin=
db_name={run}/biboumi.sqlite
identd_port=0
log_file={run}/biboumi.log
log_level=0
policy_directory={run}
realname_customization=true
realname_from_jid=false
"""


def binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        if services_required():
            pytest.fail(f"{name} is not installed (.ci/run installs {package})")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return path


class IrcClient:
    """Just enough IRC (RFC 2812) for the test: register, join, talk, answer PINGs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, address: str, nick: str) -> IrcClient:
        reader, writer = await asyncio.open_connection(address, 6667)
        client = cls(reader, writer)
        client.send(f"NICK {nick}")
        client.send(f"USER {nick} 0 * :Heron test")
        await client.expect(" 001 ")
        return client

    def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")

    async def _read(self) -> None:
        while line := await self.reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            if text.startswith("PING "):
                self.send("PONG " + text[5:])
            else:
                self.lines.put_nowait(text)

    async def expect(self, fragment: str, timeout: float = 20) -> str:
        async with asyncio.timeout(timeout):
            while True:
                line = await self.lines.get()
                if fragment in line:
                    return line

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            self.send("QUIT :bye")
        self.task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def heron(tmp_path: Path) -> AsyncIterator[RunningServer]:
    config = make_config(
        tmp_path / "heron",
        listeners=[
            {"kind": "c2s", "host": "127.0.0.1", "port": 0},
            {"kind": "component", "host": "127.0.0.1", "port": 0},
        ],
        components={GATEWAY: {"secret": SECRET}},
    )
    running = await start(config)
    await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def test_xmpp_user_and_irc_user_talk_through_biboumi(
    heron: RunningServer, tmp_path: Path
) -> None:
    ngircd = binary("ngircd", "ngircd")
    biboumi = binary("biboumi", "biboumi")
    run = tmp_path / "run"
    run.mkdir()
    address = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
    (run / "ngircd.conf").write_text(NGIRCD_CONF.format(address=address, run=run, uid=0, gid=0))
    (run / "biboumi.cfg").write_text(
        BIBOUMI_CONF.format(gateway=GATEWAY, secret=SECRET, port=heron.ports["component"], run=run)
    )
    irc_server = await asyncio.create_subprocess_exec(
        ngircd, "--nodaemon", "--config", str(run / "ngircd.conf"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    gateway: asyncio.subprocess.Process | None = None
    irc: IrcClient | None = None
    alice = None
    try:
        async with asyncio.timeout(15):  # ngIRCd is up once it accepts connections
            while True:
                try:
                    irc = await IrcClient.connect(address, "ircbob")
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        irc.send(f"JOIN {CHANNEL}")
        await irc.expect(" 366 ")  # end of NAMES: joined

        gateway = await asyncio.create_subprocess_exec(
            biboumi, str(run / "biboumi.cfg"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(150):  # the component handshake, within 15 s
            if GATEWAY in heron.server.components.connected:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"biboumi did not connect; see {run / 'biboumi.log'}")

        alice = await login(heron, "alice@localhost/phone", PASSWORD, plugins=("xep_0045",))
        alice.send_presence()
        room = f"{CHANNEL}%{address}@{GATEWAY}"
        messages: asyncio.Queue[Any] = asyncio.Queue()
        alice.add_event_handler("groupchat_message", messages.put_nowait)
        await alice.plugin["xep_0045"].join_muc_wait(room, "alice", maxchars=0, timeout=30)
        joined = await irc.expect(" JOIN ")  # alice arrived on IRC
        assert joined.startswith(":alice!")

        alice.send_message(mto=room, mbody="hello from XMPP", mtype="groupchat")
        line = await irc.expect("PRIVMSG")
        assert line.startswith(":alice!")
        assert line.endswith(f"PRIVMSG {CHANNEL} :hello from XMPP")

        irc.send(f"PRIVMSG {CHANNEL} :hello from IRC")
        async with asyncio.timeout(20):
            while True:
                message = await messages.get()
                if message["body"] == "hello from IRC":
                    break
        assert message["from"].full == f"{room}/ircbob"
        assert message["to"].full == "alice@localhost/phone"
    finally:
        if alice is not None:
            await close(alice)
        if irc is not None:
            await irc.close()
        if gateway is not None:
            await stop(gateway)
        await stop(irc_server)
