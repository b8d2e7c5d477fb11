"""Federation with Prosody (Debian's package), a server Heron did not write.

The test starts its own Prosody with a config, certificate and data directory of its own on
loopback. Prosody finds Heron through a DNS server the test runs (an SRV record for the
ephemeral s2s port); Heron finds Prosody through its static peers map. A slixmpp user on each server
subscribes to the other, sees the other come online, and they exchange messages both ways.

It runs twice: with self-signed certificates (dialback proves the domains) and with
certificates from a test CA both servers trust and require (SASL EXTERNAL both ways).
Prosody runs its ``mod_s2s_bidi`` (XEP-0288), so once users chatted both ways, the kernel's
TCP table shows one connection between the two servers, not one per direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from slixmpp import ClientXMPP

from heron.app import RunningServer, start
from heron.jid import JID
from heron.stream.s2s import S2SIncoming
from heron.tls import ensure_certificate
from heron.transport.s2s import S2SListener
from tests.certs import issue, make_ca
from tests.conftest import make_config, services_required
from tests.dnsserver import DnsServer
from tests.integration.clients import close, login
from tests.tcpcount import settle_to

PASSWORD = "prosody-interop-pw"
HERON = "heron.example"
PROSODY = "prosody.example"

CONFIG = """
pidfile = "{run}/prosody.pid"
data_path = "{run}/data"
log = {{ debug = "{run}/prosody.log" }}
run_as_root = true
daemonize = false
prosody_user = "root"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ {s2s} }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
admin_socket = "{run}/prosody.sock"
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix";
                    "s2s_bidi"; }}
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {secure}
authentication = "internal_hashed"
storage = "internal"
unbound = {{ resolvconf = false; hoststxt = false; forward = "127.0.0.1@{dns}" }}
certificates = "{run}/certs"
ssl = {{ certificate = "{cert}"; key = "{key}"; {cafile} }}

VirtualHost "{domain}"
"""


def prosody_binary() -> str:
    path = shutil.which("prosody")
    if path is None:
        if services_required():
            pytest.fail("prosody is not installed (.ci/run installs it)")
        pytest.skip("prosody is not installed (apt-get install prosody)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Prosody:
    process: asyncio.subprocess.Process
    c2s: int
    s2s: int
    cert: Path  # what clients trust to reach it
    log: Path


@dataclass
class Trust:
    """Self-signed certificates (``ca`` None) or certificates issued by a test CA."""

    ca: Path | None
    files: dict[str, tuple[Path, Path]]


@pytest.fixture(params=["dialback", "certificates"])
def trust(request: pytest.FixtureRequest, tmp_path: Path) -> Trust:
    if request.param == "dialback":
        return Trust(None, {})
    folder = tmp_path / "ca"
    folder.mkdir()
    ca_path, ca, ca_key = make_ca(folder)
    return Trust(ca_path, {d: issue(folder, d, ca, ca_key) for d in (HERON, PROSODY)})


async def wait_for_port(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    for _ in range(100):
        if process.returncode is not None:
            break
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "(no log)")
    raise AssertionError(f"Prosody did not start: {text[-2000:]}")


@pytest.fixture
async def prosody(tmp_path: Path, trust: Trust) -> AsyncIterator[tuple[Prosody, DnsServer]]:
    binary = prosody_binary()
    run = tmp_path / "prosody"
    (run / "data").mkdir(parents=True)
    cert, key = trust.files.get(PROSODY) or ensure_certificate(PROSODY, run / "certs")
    dns = DnsServer({})
    await dns.start()
    c2s, s2s = free_port(), free_port()
    config = run / "prosody.cfg.lua"
    config.write_text(
        CONFIG.format(
            run=run,
            c2s=c2s,
            s2s=s2s,
            dns=dns.port,
            domain=PROSODY,
            cert=cert,
            key=key,
            cafile=f'cafile = "{trust.ca}";' if trust.ca else "",
            secure="true" if trust.ca else "false",
        )
    )
    register = await asyncio.create_subprocess_exec(
        "prosodyctl",
        "--config",
        str(config),
        "register",
        "puser",
        PROSODY,
        PASSWORD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(register.communicate(), 30)
    assert register.returncode == 0, out.decode(errors="replace")
    process = await asyncio.create_subprocess_exec(
        binary,
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    log = run / "prosody.log"
    try:
        await wait_for_port(c2s, process, log)
        yield Prosody(process, c2s, s2s, trust.ca or cert, log), dns
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        dns.stop()


@pytest.fixture
async def heron(
    tmp_path: Path, prosody: tuple[Prosody, DnsServer], trust: Trust
) -> AsyncIterator[RunningServer]:
    peer, dns = prosody
    host: dict[str, object] = {}
    s2s: dict[str, object] = {"peers": {PROSODY: f"127.0.0.1:{peer.s2s}"}}
    if trust.ca is not None:
        cert, key = trust.files[HERON]
        host = {"cert": str(cert), "key": str(key)}
        s2s |= {"require_valid_certificates": True, "ca_file": str(trust.ca)}
    config = make_config(
        tmp_path / "heron",
        hosts={HERON: host},
        listeners=[
            {"kind": "c2s", "host": "127.0.0.1", "port": 0},
            {"kind": "s2s", "host": "127.0.0.1", "port": 0},
        ],
        s2s=s2s,
    )
    running = await start(config)
    if trust.ca is not None:
        running.certificates[HERON] = trust.ca  # what our test client trusts
    await running.server.accounts.create(JID.parse(f"huser@{HERON}"), PASSWORD)
    # What Prosody's resolver will find for our domain.
    dns.records[(f"_xmpp-server._tcp.{HERON}.", "SRV")] = [f"0 5 {running.ports['s2s']} {HERON}."]
    dns.records[(f"{HERON}.", "A")] = ["127.0.0.1"]
    try:
        yield running
    finally:
        await running.stop()


def incoming(server: RunningServer) -> list[S2SIncoming]:
    return [
        stream
        for listener in server.listeners
        if isinstance(listener, S2SListener)
        for stream in listener.streams
    ]


async def prosody_user(peer: Prosody) -> ClientXMPP:
    client = ClientXMPP(f"puser@{PROSODY}/laptop", PASSWORD)
    client.ca_certs = peer.cert
    client.enable_direct_tls = False
    client.enable_starttls = True
    client.enable_plaintext = False
    client.auto_reconnect = False
    client.register_plugin("xep_0199")
    started = asyncio.ensure_future(client.wait_until("session_start", timeout=15))
    client.connect("127.0.0.1", peer.c2s)
    await started
    client.roster.auto_authorize = None
    client.roster.auto_subscribe = False
    await client.get_roster(timeout=10)
    client.send_presence()
    return client


async def test_heron_and_prosody_users_befriend_and_chat(
    heron: RunningServer, prosody: tuple[Prosody, DnsServer], trust: Trust
) -> None:
    peer, _dns = prosody
    ours = await login(heron, f"huser@{HERON}/phone", PASSWORD)
    ours.roster.auto_authorize = None
    ours.roster.auto_subscribe = False
    await ours.get_roster(timeout=5)
    ours.send_presence()
    theirs = await prosody_user(peer)
    try:
        # Heron → Prosody: a subscription request, approved; Heron's user sees them online.
        asked = asyncio.ensure_future(theirs.wait_until("presence_subscribe", timeout=30))
        ours.send_presence(pto=f"puser@{PROSODY}", ptype="subscribe")
        assert (await asked)["from"].bare == f"huser@{HERON}"
        seen = asyncio.ensure_future(ours.wait_until("got_online", timeout=30))
        theirs.send_presence(pto=f"huser@{HERON}", ptype="subscribed")
        assert (await seen)["from"].bare == f"puser@{PROSODY}"

        # Prosody → Heron: the other way round.
        asked_back = asyncio.ensure_future(ours.wait_until("presence_subscribe", timeout=30))
        theirs.send_presence(pto=f"huser@{HERON}", ptype="subscribe")
        assert (await asked_back)["from"].bare == f"puser@{PROSODY}"
        seen_back = asyncio.ensure_future(theirs.wait_until("got_online", timeout=30))
        ours.send_presence(pto=f"puser@{PROSODY}", ptype="subscribed")
        assert (await seen_back)["from"].bare == f"huser@{HERON}"

        got = asyncio.ensure_future(theirs.wait_until("message", timeout=30))
        ours.send_message(mto=f"puser@{PROSODY}", mbody="hello Prosody", mtype="chat")
        assert (await got)["body"] == "hello Prosody"
        back = asyncio.ensure_future(ours.wait_until("message", timeout=30))
        theirs.send_message(mto=f"huser@{HERON}", mbody="hello Heron", mtype="chat")
        message = await back
        assert message["body"] == "hello Heron"
        assert message["from"].bare == f"puser@{PROSODY}"
    finally:
        await close(ours)
        await close(theirs)
    log = await asyncio.to_thread(peer.log.read_text)
    assert HERON in log  # Prosody really federated with us (not a local shortcut)
    # XEP-0288: one connection between the servers carries both directions. Which side
    # opened it depends on who asked first (Prosody's dialback check of our key may open
    # one, which it then uses both ways instead of ours).
    assert await settle_to(1, peer.s2s, heron.ports["s2s"]) == 1
    assert heron.connector is not None
    ours = list(heron.connector.streams)
    theirs = [s for s in incoming(heron) if (PROSODY, HERON) in s.authenticated]
    assert len(ours) + len(theirs) == 1
    assert all(s.bidi for s in ours + theirs)
    if ours:
        assert "Requested bidirectional stream" in log
        # Heron proved itself by certificate when both trust the CA, else by dialback
        assert ours[0].method == ("dialback" if trust.ca is None else "EXTERNAL")
    else:
        assert "Requesting bidirectional stream" in log
