"""Federation with ejabberd (Debian's package, 23.01), a server Heron did not write.

The test runs its own ejabberd node: a config, spool, log folder, Erlang node name, cookie and
distribution port of its own, listening on loopback only; Debian's system service is never
used. ejabberd finds Heron through a DNS server the test runs (SRV records for the ephemeral
s2s port of ``heron.example`` and of its MUC service); Heron finds ejabberd through its static
peers map. Users on both sides are slixmpp clients over STARTTLS.

Each test runs twice: with self-signed certificates, where dialback proves the domains
(ejabberd's ``mod_s2s_dialback``), and with certificates from a test CA both servers trust and
require, where ejabberd has no dialback at all, so only SASL EXTERNAL (XEP-0178) can work.
ejabberd's own log says which method each direction used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from slixmpp import JID as SJID
from slixmpp import ClientXMPP

from heron.app import RunningServer, start
from heron.jid import JID
from heron.tls import ensure_certificate
from tests.certs import issue, make_ca
from tests.conftest import make_config, services_required
from tests.dnsserver import DnsServer
from tests.integration.clients import close, instant_room, login
from tests.tcpcount import settle_to

PASSWORD = "ejabberd-interop-pw"
HERON = "heron.example"
MUC = f"conference.{HERON}"
EJABBERD = "ejabberd.example"

# ejabberd 23.01's options (its documentation names each); dialback only when asked for.
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
  -
    port: {s2s}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
s2s_use_starttls: required
{cafile}
s2s_dns_timeout: 5
s2s_dns_retries: 1
auth_password_format: scram
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {{}}
  mod_roster: {{}}
{dialback}
"""

# Sourced by ejabberdctl: a node of our own, reached on a fixed distribution port (no epmd),
# with a cookie nobody else knows; run as the current user rather than Debian's `ejabberd`.
CTL_CONFIG = """
ERLANG_NODE={node}@localhost
ERL_DIST_PORT={dist}
INET_DIST_INTERFACE=127.0.0.1
EXEC_CMD=as_current_user
ERL_OPTIONS="-setcookie {cookie}"
"""

# Erlang's resolver (ejabberd's SRV lookups): only the test's DNS server, never the machine's.
# ejabberd resolves SRV targets with getaddrinfo, which this file does not reach: the targets
# are "localhost".
INETRC = """
{{resolv_conf, ""}}.
{{hosts_file, ""}}.
{{host, {{127,0,0,1}}, ["localhost"]}}.
{{nameserver, {{127,0,0,1}}, {dns}}}.
{{lookup, [file, dns]}}.
"""


def ejabberdctl_binary() -> str:
    """Debian's ejabberdctl, which runs only as root or as the `ejabberd` user."""
    path = shutil.which("ejabberdctl", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if path is None:
        reason = "ejabberd is not installed (apt-get install ejabberd)"
    elif os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "ejabberd":
        reason = "Debian's ejabberdctl runs only as root or as the ejabberd user"
    else:
        return path
    if services_required():
        pytest.fail(f"{reason}; .ci/run installs ejabberd and runs as root")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Trust:
    """Self-signed certificates (``ca`` None) or certificates issued by a test CA."""

    ca: Path | None
    files: dict[str, tuple[Path, Path]]


@dataclass
class Ejabberd:
    process: asyncio.subprocess.Process
    ctl: list[str]
    env: dict[str, str]
    c2s: int
    s2s: int
    cert: Path  # what clients trust to reach it
    log: Path
    dns: DnsServer

    async def run(self, *args: str) -> str:
        """An ejabberdctl command against this node; its output, or AssertionError."""
        proc = await asyncio.create_subprocess_exec(
            *self.ctl,
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, f"ejabberdctl {' '.join(args)}: {text}"
        return text

    def read_log(self) -> str:
        return self.log.read_text() if self.log.exists() else "(no log)"


@pytest.fixture(params=["dialback", "certificates"])
def trust(request: pytest.FixtureRequest, tmp_path: Path) -> Trust:
    if request.param == "dialback":
        return Trust(None, {})
    folder = tmp_path / "ca"
    folder.mkdir()
    ca_path, ca, ca_key = make_ca(folder)
    return Trust(
        ca_path,
        {
            HERON: issue(folder, HERON, ca, ca_key, also=(MUC,)),
            EJABBERD: issue(folder, EJABBERD, ca, ca_key),
        },
    )


async def wait_for_port(port: int, node: Ejabberd) -> None:
    for _ in range(300):
        if node.process.returncode is not None:
            break
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    text = await asyncio.to_thread(node.read_log)
    raise AssertionError(f"ejabberd did not start: {text[-3000:]}")


async def stop_node(node: Ejabberd) -> None:
    """ejabberdctl stop, then the process group we started if it lingers."""
    with contextlib.suppress(AssertionError, TimeoutError, OSError):
        await node.run("stop")
    try:
        await asyncio.wait_for(node.process.wait(), 20)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)  # its own session: erl and helpers
        await node.process.wait()


@pytest.fixture
async def ejabberd(tmp_path: Path, trust: Trust) -> AsyncIterator[Ejabberd]:
    binary = ejabberdctl_binary()
    run = tmp_path / "ejabberd"
    for sub in ("spool", "logs", "certs"):
        (run / sub).mkdir(parents=True)
    cert, key = trust.files.get(EJABBERD) or ensure_certificate(EJABBERD, run / "certs")
    pem = run / "certs" / "ejabberd.pem"  # ejabberd wants certificate and key in one file
    pem.write_text(cert.read_text() + key.read_text())
    pem.chmod(0o600)
    dns = DnsServer({})
    await dns.start()
    c2s, s2s, dist = free_port(), free_port(), free_port()
    (run / "ejabberd.yml").write_text(
        CONFIG.format(
            domain=EJABBERD,
            pem=pem,
            c2s=c2s,
            s2s=s2s,
            cafile=f's2s_cafile: "{trust.ca}"' if trust.ca else "",
            dialback="" if trust.ca else "  mod_s2s_dialback: {}",
        )
    )
    (run / "ejabberdctl.cfg").write_text(
        CTL_CONFIG.format(
            node=f"heron-interop-{os.getpid()}-{dist}", dist=dist, cookie=secrets.token_hex(16)
        )
    )
    (run / "inetrc").write_text(INETRC.format(dns=dns.port))  # ejabberdctl reads it from here
    ctl = [
        binary,
        "--config-dir",
        str(run),
        "--config",
        str(run / "ejabberd.yml"),
        "--ctl-config",
        str(run / "ejabberdctl.cfg"),
        "--spool",
        str(run / "spool"),
        "--logs",
        str(run / "logs"),
    ]
    env = {**os.environ, "HOME": str(run)}  # Erlang's cookie file, if any, stays in here
    process = await asyncio.create_subprocess_exec(
        *ctl,
        "foreground",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    node = Ejabberd(
        process, ctl, env, c2s, s2s, trust.ca or cert, run / "logs" / "ejabberd.log", dns
    )
    try:
        await wait_for_port(c2s, node)
        await node.run("register", "euser", EJABBERD, PASSWORD)
        yield node
    finally:
        await stop_node(node)
        dns.stop()


@pytest.fixture
async def heron(tmp_path: Path, ejabberd: Ejabberd, trust: Trust) -> AsyncIterator[RunningServer]:
    host: dict[str, object] = {}
    s2s: dict[str, object] = {"peers": {EJABBERD: f"127.0.0.1:{ejabberd.s2s}"}}
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
    # What ejabberd's resolver finds for our domain and our MUC service.
    for domain in (HERON, MUC):
        target = f"0 5 {running.ports['s2s']} localhost."
        ejabberd.dns.records[(f"_xmpp-server._tcp.{domain}.", "SRV")] = [target]
    try:
        yield running
    finally:
        await running.stop()


async def ejabberd_user(node: Ejabberd, *plugins: str) -> ClientXMPP:
    client = ClientXMPP(f"euser@{EJABBERD}/laptop", PASSWORD)
    client.ca_certs = node.cert
    client.enable_direct_tls = False
    client.enable_starttls = True
    client.enable_plaintext = False
    client.auto_reconnect = False
    for plugin in ("xep_0199", *plugins):
        client.register_plugin(plugin)
    started = asyncio.ensure_future(client.wait_until("session_start", timeout=15))
    client.connect("127.0.0.1", node.c2s)
    await started
    client.roster.auto_authorize = None
    client.roster.auto_subscribe = False
    await client.get_roster(timeout=10)
    client.send_presence()
    return client


async def heron_user(server: RunningServer, *plugins: str) -> ClientXMPP:
    client = await login(server, f"huser@{HERON}/phone", PASSWORD, plugins=plugins)
    client.roster.auto_authorize = None
    client.roster.auto_subscribe = False
    await client.get_roster(timeout=5)
    client.send_presence()
    return client


async def assert_methods(heron: RunningServer, node: Ejabberd, trust: Trust, *ours: str) -> None:
    """Both servers authenticated the other with the method this run is about."""
    method = "dialback" if trust.ca is None else "EXTERNAL"
    wanted = [
        line
        for domain in ours
        # Heron → ejabberd, as ejabberd saw it; and ejabberd → Heron, as ejabberd did it.
        for line in (
            f"Accepted inbound s2s {method} authentication {domain} -> {EJABBERD}",
            f"Accepted outbound s2s {method} authentication {EJABBERD} -> {domain}",
        )
    ]
    log = ""
    for _ in range(50):  # ejabberd writes its log lines a moment after it acts on them
        log = await asyncio.to_thread(node.read_log)
        if all(line in log for line in wanted):
            break
        await asyncio.sleep(0.2)
    for line in wanted:
        assert line in log, log[-3000:]
    other = "EXTERNAL" if method == "dialback" else "dialback"
    assert f"Accepted inbound s2s {other}" not in log
    assert f"Accepted outbound s2s {other}" not in log
    assert heron.connector is not None
    assert {s.method for s in heron.connector.streams} == {method}


async def test_heron_and_ejabberd_users_befriend_and_chat(
    heron: RunningServer, ejabberd: Ejabberd, trust: Trust
) -> None:
    ours = await heron_user(heron)
    theirs = await ejabberd_user(ejabberd)
    try:
        # Heron → ejabberd: a subscription request, approved; Heron's user sees them online.
        asked = asyncio.ensure_future(theirs.wait_until("presence_subscribe", timeout=20))
        ours.send_presence(pto=f"euser@{EJABBERD}", ptype="subscribe")
        assert (await asked)["from"].bare == f"huser@{HERON}"
        seen = asyncio.ensure_future(ours.wait_until("got_online", timeout=20))
        theirs.send_presence(pto=f"huser@{HERON}", ptype="subscribed")
        assert (await seen)["from"].bare == f"euser@{EJABBERD}"

        # ejabberd → Heron: the other way round.
        asked_back = asyncio.ensure_future(ours.wait_until("presence_subscribe", timeout=20))
        theirs.send_presence(pto=f"huser@{HERON}", ptype="subscribe")
        assert (await asked_back)["from"].bare == f"euser@{EJABBERD}"
        seen_back = asyncio.ensure_future(theirs.wait_until("got_online", timeout=20))
        ours.send_presence(pto=f"euser@{EJABBERD}", ptype="subscribed")
        assert (await seen_back)["from"].bare == f"huser@{HERON}"

        # Both rosters now say "both".
        assert ours.client_roster[f"euser@{EJABBERD}"]["subscription"] == "both"
        assert theirs.client_roster[f"huser@{HERON}"]["subscription"] == "both"

        got = asyncio.ensure_future(theirs.wait_until("message", timeout=20))
        ours.send_message(mto=f"euser@{EJABBERD}", mbody="hello ejabberd", mtype="chat")
        message = await got
        assert message["body"] == "hello ejabberd"
        assert message["from"] == SJID(f"huser@{HERON}/phone")
        back = asyncio.ensure_future(ours.wait_until("message", timeout=20))
        theirs.send_message(mto=f"huser@{HERON}", mbody="hello Heron", mtype="chat")
        message = await back
        assert message["body"] == "hello Heron"
        assert message["from"] == SJID(f"euser@{EJABBERD}/laptop")
    finally:
        await close(ours)
        await close(theirs)
    await assert_methods(heron, ejabberd, trust, HERON)
    # ejabberd 23.01 offers no bidirectional streams (XEP-0288): Heron does not ask, and
    # falls back to one connection per direction.
    assert heron.connector is not None
    assert [s.bidi for s in heron.connector.streams] == [False]
    assert await settle_to(2, ejabberd.s2s, heron.ports["s2s"]) == 2


async def test_ejabberd_user_talks_in_a_heron_room(
    heron: RunningServer, ejabberd: Ejabberd, trust: Trust
) -> None:
    room = SJID(f"lounge@{MUC}")
    ours = await heron_user(heron, "xep_0045")
    theirs = await ejabberd_user(ejabberd, "xep_0045")
    try:
        # Heron's user creates the room by joining it; ejabberd's joins over federation.
        await ours.plugin["xep_0045"].join_muc_wait(room, "Hera", timeout=10)
        await instant_room(ours, room)  # a new room opens once configured (XEP-0045 §10.1)
        arrived = asyncio.ensure_future(ours.wait_until(f"muc::{room}::got_online", timeout=20))
        own, _subject, occupants, _history = await theirs.plugin["xep_0045"].join_muc_wait(
            room, "Ejay", timeout=20
        )
        assert own["from"] == SJID(f"{room}/Ejay")
        assert own["muc"]["role"] == "participant"
        assert "Hera" in [p["muc"]["nick"] for p in occupants]
        assert (await arrived)["muc"]["nick"] == "Ejay"

        # A groupchat message each way, stamped with the sender's room nick.
        got = asyncio.ensure_future(theirs.wait_until("groupchat_message", timeout=20))
        ours.send_message(mto=room, mbody="welcome, ejabberd", mtype="groupchat")
        message = await got
        assert message["body"] == "welcome, ejabberd"
        assert message["from"] == SJID(f"{room}/Hera")
        heard = asyncio.ensure_future(ours.wait_until("groupchat_message", timeout=20))
        theirs.send_message(mto=room, mbody="thanks, Heron", mtype="groupchat")
        message = await heard
        assert message["body"] == "thanks, Heron"
        assert message["from"] == SJID(f"{room}/Ejay")

        # Leaving over federation: the room tells the others.
        left = asyncio.ensure_future(ours.wait_until(f"muc::{room}::got_offline", timeout=20))
        theirs.plugin["xep_0045"].leave_muc(room, "Ejay")
        assert (await left)["muc"]["nick"] == "Ejay"
    finally:
        await close(ours)
        await close(theirs)
    await assert_methods(heron, ejabberd, trust, MUC)
