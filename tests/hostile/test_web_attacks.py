"""Attacks on the HTTP side end only the offending request or session, with a clear answer,
while an innocent WebSocket user and a TCP user go on chatting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from slixmpp import ClientXMPP

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, login
from tests.web.test_websocket_bosh import FRAMING, PASSWORD, BoshClient, WsClient, url


@pytest.fixture
async def web(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    listeners = [
        {"kind": "c2s", "host": "127.0.0.1", "port": 0},
        {"kind": "http", "host": "127.0.0.1", "port": 0},
    ]
    running = await start(config_factory(listeners=listeners))
    for user in ("victim", "mallory"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


async def still_served(client: ClientXMPP) -> None:
    assert await client.plugin["xep_0199"].ping(jid="localhost", timeout=5) >= 0


async def test_websocket_attacks_end_only_that_socket(web: RunningServer) -> None:
    bystander = await login(web, "victim@localhost/tcp", PASSWORD)
    try:
        async with aiohttp.ClientSession() as http:
            endpoint = url(web, "/xmpp-websocket", "ws")
            # A DTD with an entity: restricted XML, as on TCP.
            ws = await http.ws_connect(endpoint, protocols=("xmpp",))
            client = WsClient(ws)
            await client.open()
            await client.send("<!DOCTYPE x [<!ENTITY a 'aaaa'>]><message>&a;</message>")
            assert "restricted-xml" in await client.expect("stream:error")
            await ws.close()
            # A message far over the stanza limit: the WebSocket is closed (1009).
            ws = await http.ws_connect(endpoint, protocols=("xmpp",))
            await ws.send_str(f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>")
            await ws.send_str("<message>" + "x" * 600_000 + "</message>")
            async with asyncio.timeout(5):
                while (await ws.receive()).type is not aiohttp.WSMsgType.CLOSE:
                    pass
            assert ws.close_code == 1009
            await ws.close()
            # Binary frames are not XML: a stream error.
            ws = await http.ws_connect(endpoint, protocols=("xmpp",))
            client = WsClient(ws)
            await client.open()
            await ws.send_bytes(b"\x00\x01\x02")
            assert "stream:error" in await client.expect("stream:error")
            await ws.close()
            # Meanwhile an innocent WebSocket user logs in and the TCP user is served.
            innocent = WsClient(await http.ws_connect(endpoint, protocols=("xmpp",)))
            await innocent.login("victim", "web")
            await still_served(bystander)
    finally:
        await close(bystander)


async def test_bosh_attacks_get_clear_answers(web: RunningServer) -> None:
    bystander = await login(web, "victim@localhost/tcp", PASSWORD)
    try:
        async with aiohttp.ClientSession() as http:
            endpoint = url(web, "/http-bind")
            entity = (
                "<!DOCTYPE body [<!ENTITY a 'a'>]><body xmlns='http://jabber.org/protocol/"
                "httpbind' rid='1' to='localhost'>&a;</body>"
            )
            for bad in (entity, "not xml at all", "<body xmlns='wrong' rid='1'/>"):
                async with http.post(endpoint, data=bad) as response:
                    assert response.status == 400
            async with http.post(endpoint, data="<body " + "x" * (2 * 1024 * 1024)) as response:
                assert response.status == 413  # over the request body limit
            client = BoshClient(http, endpoint)
            created = await client.post(to="localhost", wait="5", xmpp_version="1.0")
            assert "sid=" in created
            async with http.post(
                endpoint,
                data="<body xmlns='http://jabber.org/protocol/httpbind' rid='x' sid='y'/>",
            ) as response:
                assert "bad-request" in await response.text()
            await still_served(bystander)
    finally:
        await close(bystander)


async def test_upload_puts_that_lie_are_refused(web: RunningServer) -> None:
    mallory = await login(web, "mallory@localhost/x", PASSWORD, plugins=("xep_0363",))
    try:
        plugin = mallory.plugin["xep_0363"]
        answer = await plugin.request_slot(
            JID.parse("upload.localhost"), "a.bin", 10, "application/octet-stream", timeout=5
        )
        put = answer["http_upload_slot"]["put"]["url"]

        async def endless() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"0123456789"

        async with aiohttp.ClientSession() as http:
            # Chunked, with no Content-Length: refused before a byte is stored.
            async with http.put(
                put, data=endless(), headers={"Content-Type": "application/octet-stream"}
            ) as response:
                assert response.status == 400
            # Path tricks do not reach the file system.
            base = put.split("/upload/")[0]
            for path in ("/upload/upload.localhost/..%2F..%2Fsecret/x", "/upload/../../secret"):
                async with http.get(base + path) as response:
                    assert response.status in (400, 403, 404)
    finally:
        await close(mallory)
