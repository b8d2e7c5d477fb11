"""Interop with go-sendxmpp (Debian), a client written in Go with its own TLS and SASL."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from heron.app import RunningServer
from heron.jid import JID
from tests.conftest import services_required
from tests.integration.clients import close, login

PASSWORD = "go-sendxmpp-pw"


def go_sendxmpp() -> str:
    path = shutil.which("go-sendxmpp")
    if path is None:
        if services_required():
            pytest.fail("go-sendxmpp is not installed (.ci/run installs it)")
        pytest.skip("go-sendxmpp is not installed (apt-get install go-sendxmpp)")
    return path


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
async def test_go_sendxmpp_message_reaches_a_slixmpp_user(
    server: RunningServer, direct_tls: bool
) -> None:
    binary = go_sendxmpp()
    for user in ("gopher", "reader"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    reader = await login(server, "reader@localhost/r", PASSWORD)
    try:
        reader.send_presence()
        await reader.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        arrived = asyncio.ensure_future(reader.wait_until("message", timeout=20))
        port = server.ports["c2s_tls" if direct_tls else "c2s"]
        args = ["-u", "gopher@localhost", "-p", PASSWORD, "-j", f"127.0.0.1:{port}"]
        if direct_tls:
            args.append("-t")
        env = dict(os.environ, SSL_CERT_FILE=str(server.certificates["localhost"]))
        proc = await asyncio.create_subprocess_exec(
            binary,
            *args,
            "reader@localhost",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(b"hello from Go\n"), 30)
        assert proc.returncode == 0, (out + err).decode(errors="replace")
        message = await arrived
        assert message["body"].strip() == "hello from Go"
        assert message["from"].bare == "gopher@localhost"
    finally:
        await close(reader)
