"""Moving in from Prosody and out again (XEP-0227), with Debian's Prosody tools: accounts
made by prosodyctl, exported by prosody-migrator into its xep0227 store, imported by
`heron import`; the users log in with their old passwords and see their contacts. Then
`heron export` is read back by prosody-migrator and the credentials are the same."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from heron.app import start
from heron.config import config_from_dict
from tests.conftest import services_required
from tests.integration.clients import LoginFailed, close, login

PROSODY_DATA = Path("/var/lib/prosody")  # where prosody-migrator's xep0227 store writes

PROSODY_CONFIG = """
data_path = "{data}"
pidfile = "{run}/prosody.pid"
log = {{ error = "{run}/prosody.log" }}
run_as_root = true
prosody_user = "root"
modules_enabled = {{ "roster"; "saslauth"; }}
authentication = "internal_hashed"
storage = "internal"
certificates = "{run}"
VirtualHost "{domain}"
"""

MIGRATOR = """
input {{
  type = "{src}"; path = "{src_path}";
  hosts = {{ ["{domain}"] = {{ "accounts"; "roster"; "vcard"; }}; }};
}}
output {{ type = "{dst}"; path = "{dst_path}"; }}
"""


def tool(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/usr/sbin:/bin")
    if path is None:
        if services_required():
            pytest.fail(f"{name} is not installed (.ci/run installs prosody)")
        pytest.skip(f"{name} is not installed (apt-get install prosody)")
    return path


async def run(*argv: str, stdin: str = "") -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), 120)
    text = out.decode()
    assert proc.returncode == 0, f"{argv}: {text}"
    return text


def prosody_host_dir(data: Path, domain: str) -> Path:
    """Prosody's datamanager escapes the host's dots in its directory name."""
    return data / domain.replace(".", "%2e")


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder prosody-migrator can use: it drops root for the prosody user, who cannot
    enter pytest's private temporary folders."""
    path = Path(tempfile.mkdtemp(prefix="heron-pie-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def open_to_all(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        item.chmod(0o777 if item.is_dir() else 0o666)


@pytest.fixture
def domain() -> Iterator[str]:
    """A host name no other run uses: prosody-migrator's xep0227 files are shared."""
    name = f"pie{secrets.token_hex(4)}.example"
    yield name
    for leftover in PROSODY_DATA.glob(f"*@{name}.xml"):
        leftover.unlink()


async def migrator(tmp: Path, **fields: str) -> None:
    config = tmp / f"migrator-{secrets.token_hex(3)}.cfg.lua"
    config.write_text(MIGRATOR.format(**fields))
    config.chmod(0o644)
    await run(tool("prosody-migrator"), f"--config={config}", "input", "output")


async def heron_cli(config: Path, *args: str) -> str:
    return await run(sys.executable, "-m", "heron", "-c", str(config), *args)


async def test_prosody_users_move_in_with_their_passwords_and_contacts_then_move_back(
    shared: Path, domain: str
) -> None:
    tmp_path = shared
    prosodyctl = tool("prosodyctl")
    data = tmp_path / "prosody-data"
    data.mkdir()
    cfg = tmp_path / "prosody.cfg.lua"
    cfg.write_text(PROSODY_CONFIG.format(data=data, run=tmp_path, domain=domain))
    for user, password in (("alice", "alice-old-pw"), ("bob", "bob-old-pw")):
        await run(prosodyctl, "--config", str(cfg), "register", user, domain, password)
    # Alice's roster and vCard as Prosody keeps them (its internal store's Lua tables).
    host_dir = prosody_host_dir(data, domain)
    (host_dir / "roster").mkdir()
    (host_dir / "roster" / "alice.dat").write_text(
        "return {\n"
        '  [false] = { ["version"] = 3; ["pending"] = { ["carol@example.net"] = true; }; };\n'
        f'  ["bob@{domain}"] = {{ ["subscription"] = "both"; ["name"] = "Bob";'
        ' ["groups"] = { ["Friends"] = true; }; };\n'
        '  ["dave@example.net"] = { ["subscription"] = "none"; ["ask"] = "subscribe";'
        ' ["groups"] = {}; };\n'
        "};\n"
    )
    (host_dir / "vcard").mkdir()
    (host_dir / "vcard" / "alice.dat").write_text(
        'return { ["name"] = "vCard"; ["attr"] = { ["xmlns"] = "vcard-temp" };'
        ' [1] = { ["name"] = "FN"; ["attr"] = {}; [1] = "Alice Liddell" }; };\n'
    )
    open_to_all(data)
    await migrator(
        tmp_path, src="internal", src_path=str(data), dst="xep0227", dst_path="", domain=domain
    )
    export = tmp_path / "from-prosody"
    export.mkdir()
    for file in PROSODY_DATA.glob(f"*@{domain}.xml"):  # noqa: ASYNC240 - a test's few files
        shutil.move(file, export / file.name)
    assert sorted(f.name for f in export.iterdir()) == [
        f"alice@{domain}.xml",
        f"bob@{domain}.xml",
    ]
    assert "scram-credentials" in (export / f"alice@{domain}.xml").read_text()

    heron_cfg = tmp_path / "heron.toml"
    heron_data = tmp_path / "heron-data"
    heron_cfg.write_text(f'data_dir = "{heron_data}"\n[hosts."{domain}"]\n')
    out = await heron_cli(heron_cfg, "import", str(export))
    assert "2 imported, 0 failed" in out

    config = config_from_dict(
        {
            "data_dir": str(heron_data),
            "listeners": [{"kind": "c2s", "host": "127.0.0.1", "port": 0}],
            "hosts": {domain: {}},
        },
        "test",
    )
    running = await start(config)
    try:
        with pytest.raises(LoginFailed):
            await login(running, f"alice@{domain}/x", "wrong", mech="SCRAM-SHA-1")
        alice = await login(running, f"alice@{domain}/x", "alice-old-pw", mech="SCRAM-SHA-1")
        try:
            roster = await alice.get_roster(timeout=5)
            items = roster["roster"]["items"]
            assert items[f"bob@{domain}"]["subscription"] == "both"
            assert items[f"bob@{domain}"]["name"] == "Bob"
            assert items[f"bob@{domain}"]["groups"] == ["Friends"]
            assert items["dave@example.net"]["subscription"] == "none"
            assert items["dave@example.net"]["ask"] == "subscribe"
            alice.register_plugin("xep_0054")
            card = await alice.plugin["xep_0054"].get_vcard(f"alice@{domain}", timeout=5)
            assert card["vcard_temp"]["FN"] == "Alice Liddell"
        finally:
            await close(alice)
        bob = await login(running, f"bob@{domain}/y", "bob-old-pw", mech="SCRAM-SHA-1")
        await close(bob)
    finally:
        await running.stop()

    # A second import of the same accounts: refused per item, nothing changed.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "heron",
        "-c",
        str(heron_cfg),
        "import",
        str(export),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out_b, err_b = await proc.communicate()
    assert proc.returncode == 1
    assert f"failed alice@{domain}: the account already exists" in err_b.decode()
    assert "0 imported, 2 failed" in out_b.decode()

    # And back: Heron's export read by prosody-migrator into Prosody's own store.
    back = tmp_path / "to-prosody"
    await heron_cli(heron_cfg, "export", "--per-user", str(back))
    for file in back.iterdir():
        shutil.copy(file, PROSODY_DATA / file.name)
        (PROSODY_DATA / file.name).chmod(0o666)
    returned = tmp_path / "prosody-again"
    returned.mkdir()
    returned.chmod(0o777)
    await migrator(
        tmp_path,
        src="xep0227",
        src_path="",
        dst="internal",
        dst_path=str(returned),
        domain=domain,
    )
    original = (host_dir / "accounts" / "alice.dat").read_text()
    again_dir = prosody_host_dir(returned, domain)
    again = (again_dir / "accounts" / "alice.dat").read_text()
    key = re.compile(r'\["stored_key"\] = "([0-9a-f]+)"')
    assert key.search(again) is not None
    assert key.search(again).group(1) == key.search(original).group(1)  # type: ignore[union-attr]
    roster_again = (again_dir / "roster" / "alice.dat").read_text()
    assert f'["bob@{domain}"]' in roster_again
    assert '"both"' in roster_again
