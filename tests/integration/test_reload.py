"""Reload in-process (heron/ops/reload.py): module options, admins and limits change while
clients stay connected; a module refusing its new options leaves the host as it was; a
renewed certificate is served to new connections."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from heron.app import RunningServer, start
from heron.config import load_config
from heron.jid import JID
from heron.modules import AVAILABLE
from heron.ops.reload import ConfigReloader
from heron.tls import ensure_certificate
from tests.integration.clients import close, login

PASSWORD = "reload-pw"


def write(path: Path, muc: str = "", admins: str = "", limits: str = "") -> None:
    path.write_text(
        f'data_dir = "{path.parent / "data"}"\n{admins}\n'
        '[[listeners]]\nkind = "c2s"\nhost = "127.0.0.1"\nport = 0\n'
        f"{limits}\n"
        '[hosts."localhost"]\n'
        f'[hosts."localhost".modules.muc]\n{muc}\n'
    )


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, Path]]:
    path = tmp_path / "heron.toml"
    write(path, muc="max_rooms_per_user = 5")
    server = await start(load_config(path, known_modules=AVAILABLE))
    server.server.control.reloader = ConfigReloader(server, path)
    await server.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
    try:
        yield server, path
    finally:
        await server.stop()


async def test_changed_options_restart_one_module_and_keep_clients(
    running: tuple[RunningServer, Path],
) -> None:
    server, path = running
    alice = await login(server, "alice@localhost/x", PASSWORD)
    try:
        manager = server.server.managers["localhost"]
        roster_before, muc_before = manager.modules["roster"], manager.modules["muc"]
        write(
            path,
            muc="max_rooms_per_user = 7",
            admins='admins = ["alice@localhost"]',
            limits="[limits]\nmax_stanza_bytes = 131072\n",
        )
        report = await server.server.control.reload()
        assert report.ok, report.lines
        assert "localhost: modules restarted: muc" in report.lines
        assert "admins: updated" in report.lines
        assert "limits: applied to new connections" in report.lines
        assert manager.modules["roster"] is roster_before  # untouched, state kept
        assert manager.modules["muc"] is not muc_before
        assert server.server.limits.max_stanza_bytes == 131072
        assert server.server.admins.is_admin(JID.parse("alice@localhost"), "localhost")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)

        # A module that refuses its new options: the reload is refused, the host unchanged.
        write(path, muc="max_rooms_per_user = 0")
        refused = await server.server.control.reload()
        assert not refused.ok
        assert "max_rooms_per_user" in refused.lines[0]
        assert "muc" in manager.modules
        assert server.server.config.host("localhost") is not None
        options = server.server.config.host("localhost").module_options  # type: ignore[union-attr]
        assert options["muc"]["max_rooms_per_user"] == 7
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
    finally:
        await close(alice)


async def presented_certificate(port: int) -> bytes:
    """The certificate a Direct TLS listener presents to a new connection (DER)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert der is not None
        return bytes(der)
    finally:
        writer.close()


async def test_a_renewed_certificate_is_served_to_new_connections(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    cert, key = await asyncio.to_thread(ensure_certificate, "localhost", first)
    new_cert, new_key = await asyncio.to_thread(ensure_certificate, "localhost", second)
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(cert, live / "cert.pem")
    shutil.copy(key, live / "key.pem")
    path = tmp_path / "heron.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[[listeners]]\nkind = "c2s_tls"\nhost = "127.0.0.1"\nport = 0\n'
        f'[hosts."localhost"]\ncert = "{live / "cert.pem"}"\nkey = "{live / "key.pem"}"\n'
    )
    server = await start(load_config(path, known_modules=AVAILABLE))
    try:
        server.server.control.reloader = ConfigReloader(server, path)
        port = server.ports["c2s_tls"]
        der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(Encoding.DER)
        assert await presented_certificate(port) == der
        _reader, kept = await asyncio.open_connection("127.0.0.1", port, ssl=_insecure())
        shutil.copy(new_cert, live / "cert.pem")  # what certbot's renewal does
        shutil.copy(new_key, live / "key.pem")
        report = await server.server.control.reload()
        assert report.ok, report.lines
        renewed = x509.load_pem_x509_certificate(new_cert.read_bytes()).public_bytes(Encoding.DER)
        assert await presented_certificate(port) == renewed
        assert not kept.is_closing()  # an established connection keeps going
        kept.close()
    finally:
        await server.stop()


def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
