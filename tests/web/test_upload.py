"""XEP-0363 HTTP File Upload with slixmpp's xep_0363 plugin and aiohttp: upload and fetch,
the XEP's errors for oversize files and full quotas, refused PUTs (unsigned, tampered,
expired, wrong length or type), expiry, and a large upload streamed without being held in
memory."""

from __future__ import annotations

import asyncio
import io
import tracemalloc
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from slixmpp.exceptions import IqError

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from heron.modules.upload import UploadModule, safe_filename
from tests.integration.clients import close, login

pytestmark = pytest.mark.both_engines  # these modules' stores run on both

PASSWORD = "upload-password"
OPTIONS = {"max_file_size": 64 * 1024 * 1024, "quota_bytes": 96 * 1024 * 1024}


async def serve(config_factory: Callable[..., ServerConfig], **options: object) -> RunningServer:
    listeners = [
        {"kind": "c2s", "host": "127.0.0.1", "port": 0},
        {"kind": "http", "host": "127.0.0.1", "port": 0},
    ]
    hosts = {"localhost": {"modules": {"upload": {**OPTIONS, **options}}}}
    running = await start(config_factory(listeners=listeners, hosts=hosts))
    for user in ("alice", "bob"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    return running


@pytest.fixture
async def upload_server(
    config_factory: Callable[..., ServerConfig],
) -> AsyncIterator[RunningServer]:
    running = await serve(config_factory)
    try:
        yield running
    finally:
        await running.stop()


def module(server: RunningServer) -> UploadModule:
    found = server.server.managers["localhost"].modules["upload"]
    assert isinstance(found, UploadModule)
    return found


async def slot(client: object, filename: str, size: int, content_type: str) -> tuple[str, str]:
    plugin = client.plugin["xep_0363"]  # type: ignore[attr-defined]
    answer = await plugin.request_slot(
        JID.parse("upload.localhost"), filename, size, content_type, timeout=5
    )
    return answer["http_upload_slot"]["put"]["url"], answer["http_upload_slot"]["get"]["url"]


async def test_upload_then_another_user_downloads(upload_server: RunningServer) -> None:
    alice = await login(upload_server, "alice@localhost/x", PASSWORD, plugins=("xep_0363",))
    try:
        data = b"Heron notes\n" * 1000
        url = await alice.plugin["xep_0363"].upload_file(
            "notes.txt",
            size=len(data),
            content_type="text/plain",
            input_file=io.BytesIO(data),
            timeout=10,
        )
        assert url.startswith(f"http://127.0.0.1:{upload_server.ports['http']}/upload/")
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            assert await response.read() == data
            assert response.headers["Content-Type"].startswith("text/plain")
            assert response.headers["Content-Disposition"].startswith("attachment;")
            assert "sandbox" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with aiohttp.ClientSession() as http, http.get(url + "x") as response:
            assert response.status == 404
        async with (
            aiohttp.ClientSession() as http,
            http.options(
                url,
                headers={"Origin": "https://web.example", "Access-Control-Request-Method": "PUT"},
            ) as response,
        ):
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        await close(alice)


async def test_oversize_and_quota_are_refused_as_the_xep_says(
    config_factory: Callable[..., ServerConfig],
) -> None:
    running = await serve(config_factory, max_file_size=1000, quota_bytes=2500)
    alice = await login(running, "alice@localhost/x", PASSWORD, plugins=("xep_0363",))
    try:
        with pytest.raises(IqError) as big:
            await slot(alice, "big.bin", 1001, "application/octet-stream")
        assert big.value.condition == "not-acceptable"
        limit = big.value.iq.xml.find(
            ".//{urn:xmpp:http:upload:0}file-too-large/{urn:xmpp:http:upload:0}max-file-size"
        )
        assert limit is not None
        assert limit.text == "1000"
        for n in range(2):
            await slot(alice, f"part{n}.bin", 1000, "application/octet-stream")
        with pytest.raises(IqError) as full:
            await slot(alice, "part2.bin", 1000, "application/octet-stream")
        assert full.value.condition == "resource-constraint"
        assert full.value.iq["error"]["type"] == "wait"
        assert full.value.iq.xml.find(".//{urn:xmpp:http:upload:0}retry") is not None
    finally:
        await close(alice)
        await running.stop()


async def test_bad_puts_are_refused(config_factory: Callable[..., ServerConfig]) -> None:
    running = await serve(config_factory, put_ttl_s=1.0)
    alice = await login(running, "alice@localhost/x", PASSWORD, plugins=("xep_0363",))
    try:
        async with aiohttp.ClientSession() as http:
            put, get = await slot(alice, "photo.png", 4, "image/png")
            parts = urlsplit(put)
            unsigned = urlunsplit(parts._replace(query=""))
            tampered = put[:-1] + ("0" if put[-1] != "0" else "1")
            png = {"Content-Type": "image/png"}
            for bad in (unsigned, tampered):
                async with http.put(bad, data=b"\x89PNG", headers=png) as response:
                    assert response.status == 403
            async with http.put(put, data=b"\x89PNG!", headers=png) as response:
                assert response.status == 400  # not the size the slot allows
            async with http.put(
                put, data=b"\x89PNG", headers={"Content-Type": "text/html"}
            ) as response:
                assert response.status == 415
            async with http.put(put, data=b"\x89PNG", headers=png) as response:
                assert response.status == 201
            async with http.put(put, data=b"\x89PNG", headers=png) as response:
                assert response.status == 409  # a slot is used once
            async with http.get(get) as response:
                assert response.headers["Content-Disposition"].startswith("inline;")

            late, _ = await slot(alice, "late.png", 4, "image/png")
            await asyncio.sleep(1.2)
            async with http.put(late, data=b"\x89PNG", headers=png) as response:
                assert response.status == 403
                assert "expired" in await response.text()

            # Expiry: after expire_days the file is gone.
            assert await module(running).expire(now=10**10) >= 1
            async with http.get(get) as response:
                assert response.status == 404
    finally:
        await close(alice)
        await running.stop()


async def test_large_upload_is_streamed_to_disk(upload_server: RunningServer) -> None:
    alice = await login(upload_server, "alice@localhost/x", PASSWORD, plugins=("xep_0363",))
    size = 48 * 1024 * 1024
    chunk = bytes(range(256)) * 256  # 64 KiB
    try:
        put, _get = await slot(alice, "video.bin", size, "application/octet-stream")

        async def body() -> AsyncIterator[bytes]:
            for _ in range(size // len(chunk)):
                yield chunk

        tracemalloc.start()
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.put(
                    put,
                    data=body(),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(size),
                    },
                ) as response,
            ):
                assert response.status == 201
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * 1024 * 1024, f"{peak} bytes at the peak of a {size}-byte upload"
        stored = module(upload_server).root
        files = [p for p in stored.iterdir() if p.stat().st_size == size]
        assert len(files) == 1
    finally:
        await close(alice)


def test_filenames_cannot_climb_out() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("a\\b\\..\\c.txt") == "c.txt"
    assert safe_filename("\x00\x1f") == "file"
    assert safe_filename("résumé.pdf") == "résumé.pdf"
