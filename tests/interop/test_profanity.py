"""Interop with Profanity (Debian), a terminal client built on libstrophe, driven through tmux.

Profanity logs in over STARTTLS, asks a slixmpp user for a subscription and approves theirs,
so both see each other online, and they chat both ways; what Profanity shows is read back
from its tmux pane.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.app import RunningServer
from heron.jid import JID
from tests.conftest import services_required
from tests.integration.clients import close, login

PASSWORD = "profanity-pw"
ACCOUNTS = """[prof@localhost]
enabled=true
jid=prof@localhost
server=127.0.0.1
port={port}
resource=terminal
password={password}
tls.policy=trust
"""


def binaries() -> tuple[str, str]:
    profanity, tmux = shutil.which("profanity"), shutil.which("tmux")
    if profanity is None or tmux is None:
        if services_required():
            pytest.fail("profanity and tmux must be installed (.ci/run installs them)")
        pytest.skip("profanity or tmux is not installed (apt-get install profanity tmux)")
    return profanity, tmux


class Terminal:
    """Profanity in a detached tmux session on a private tmux server."""

    def __init__(self, tmux: str, socket: str, env: dict[str, str]) -> None:
        self.tmux = tmux
        self.socket = socket
        self.env = env

    async def run(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.tmux,
            "-L",
            self.socket,
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        return out.decode(errors="replace")

    async def type(self, line: str) -> None:
        await self.run("send-keys", "-t", "prof", "-l", line)
        await self.run("send-keys", "-t", "prof", "Enter")

    async def screen(self) -> str:
        return await self.run("capture-pane", "-p", "-t", "prof", "-S", "-200")

    async def wait_for(self, text: str, timeout: float = 20.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                shown = await self.screen()
                if text in shown:
                    return shown
                await asyncio.sleep(0.3)


@pytest.fixture
async def profanity(server: RunningServer, tmp_path: Path) -> AsyncIterator[Terminal]:
    profanity_bin, tmux = binaries()
    await server.server.accounts.create(JID.parse("prof@localhost"), PASSWORD)
    home = tmp_path / "home"
    data = home / ".local" / "share"
    (data / "profanity").mkdir(parents=True)
    (home / ".config" / "profanity").mkdir(parents=True)
    accounts = data / "profanity" / "accounts"
    accounts.write_text(ACCOUNTS.format(port=server.ports["c2s"], password=PASSWORD))
    accounts.chmod(0o600)
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(data),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "PATH": "/usr/bin:/bin",
    }
    terminal = Terminal(tmux, f"heron-{tmp_path.name}", env)
    await terminal.run(
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "prof",
        "-x",
        "200",
        "-y",
        "50",
        f"{profanity_bin} -a prof@localhost",
    )
    try:
        await terminal.wait_for("logged in", timeout=30)
        yield terminal
    finally:
        await terminal.run("kill-server")


async def test_profanity_adds_a_contact_and_chats(
    server: RunningServer, profanity: Terminal
) -> None:
    await server.server.accounts.create(JID.parse("bob@localhost"), PASSWORD)
    bob = await login(server, "bob@localhost/desk", PASSWORD)
    try:
        bob.roster.auto_authorize = None
        bob.roster.auto_subscribe = False
        await bob.get_roster(timeout=5)
        bob.send_presence()

        # Profanity asks for bob's presence; bob approves and Profanity shows him online.
        asked = asyncio.ensure_future(bob.wait_until("presence_subscribe", timeout=20))
        await profanity.type("/sub request bob@localhost")
        assert (await asked)["from"].bare == "prof@localhost"
        bob.send_presence(pto="prof@localhost", ptype="subscribed")

        # Bob asks back; Profanity approves; bob sees Profanity's resource come online.
        online = asyncio.ensure_future(bob.wait_until("got_online", timeout=20))
        bob.send_presence(pto="prof@localhost", ptype="subscribe")
        await profanity.wait_for("bob@localhost")
        await profanity.type("/sub allow bob@localhost")
        assert (await online)["from"].full == "prof@localhost/terminal"

        got = asyncio.ensure_future(bob.wait_until("message", timeout=20))
        await profanity.type("/msg bob@localhost hello from profanity")
        message = await got
        assert message["body"] == "hello from profanity"
        assert message["from"].bare == "prof@localhost"

        bob.send_message(mto=message["from"], mbody="hello back, terminal", mtype="chat")
        await profanity.wait_for("hello back, terminal")
    finally:
        await close(bob)
