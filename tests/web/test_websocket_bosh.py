"""XMPP over WebSocket (RFC 7395) and BOSH (XEP-0206), driven by aiohttp's HTTP client as a
web client would: login, chat with a slixmpp user on TCP, stream management resumption over
WebSocket, rid replay and the refusals; plus XEP-0156 discovery."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from heron.transport.http import HttpListener
from tests.integration.clients import close, login

PASSWORD = "web-password"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


@pytest.fixture
async def web_server(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    listeners = [
        {"kind": "c2s", "host": "127.0.0.1", "port": 0},
        {"kind": "http", "host": "127.0.0.1", "port": 0},
    ]
    running = await start(config_factory(listeners=listeners))
    for user in ("alice", "bob"):
        await running.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield running
    finally:
        await running.stop()


def plain(user: str) -> str:
    token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
    return f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"


class WsClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def expect(self, pattern: str, timeout: float = 5) -> str:
        """The next message matching ``pattern`` (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.receive()
                assert message.type is aiohttp.WSMsgType.TEXT, message
                if re.search(pattern, message.data, re.S):
                    return str(message.data)

    async def open(self) -> str:
        await self.send(f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>")
        await self.expect(r"^<open ")
        return await self.expect(r"stream:features")

    async def login(self, user: str, resource: str = "web") -> None:
        await self.open()
        await self.send(plain(user))
        await self.expect(r"<success")
        await self.open()
        await self.send(
            "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:"
            f"ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        )
        await self.expect(r"id=\"b1\"")


def url(server: RunningServer, path: str, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.ports['http']}{path}"


async def test_websocket_login_chat_and_resume(web_server: RunningServer) -> None:
    bob = await login(web_server, "bob@localhost/tcp", PASSWORD)
    bob.send_presence()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url(web_server, "/xmpp-websocket", "ws"), protocols=("xmpp",))
        assert ws.protocol == "xmpp"
        alice = WsClient(ws)
        features = await alice.open()
        assert "xmlns:stream='http://etherx.jabber.org/streams'" in features
        assert "starttls" not in features  # loopback counts as encrypted; PLAIN is offered
        assert "PLAIN" in features
        await alice.send(plain("alice"))
        await alice.expect(r"<success")
        await alice.open()
        await alice.send(
            "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:"
            "ns:xmpp-bind'><resource>web</resource></bind></iq>"
        )
        await alice.expect(r"alice@localhost/web")
        await alice.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        enabled = await alice.expect(r"<enabled")
        previd = re.search(r'id="([^"]+)"', enabled)
        assert previd is not None

        # To a slixmpp user on TCP and back.
        got = asyncio.ensure_future(bob.wait_until("message", timeout=5))
        await alice.send(
            "<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'>"
            "<body>hello from the web</body></message>"
        )
        assert (await got)["body"] == "hello from the web"
        bob.send_message(mto="alice@localhost/web", mbody="hello, browser", mtype="chat")
        await alice.expect(r"hello, browser")

        # The WebSocket drops; a message arrives meanwhile; a new WebSocket resumes.
        await ws.close(code=1006)
        await asyncio.sleep(0.2)
        bob.send_message(mto="alice@localhost/web", mbody="while you were away", mtype="chat")
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        ws2 = await http.ws_connect(url(web_server, "/xmpp-websocket", "ws"), protocols=("xmpp",))
        again = WsClient(ws2)
        await again.open()
        await again.send(plain("alice"))
        await again.expect(r"<success")
        await again.open()
        await again.send(f"<resume xmlns='urn:xmpp:sm:3' previd='{previd.group(1)}' h='1'/>")
        await again.expect(r"<resumed")
        await again.expect(r"while you were away")
        await again.send(f"<close xmlns='{FRAMING}'/>")
        await again.expect(r"^<close ")
        await ws2.close()
    await close(bob)


async def test_websocket_refusals(web_server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
            await http.ws_connect(url(web_server, "/xmpp-websocket", "ws"))
        assert missing.value.status == 400
        # Through a proxy Heron does not trust (it adds X-Forwarded-For): not encrypted.
        ws = await http.ws_connect(
            url(web_server, "/xmpp-websocket", "ws"),
            protocols=("xmpp",),
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        client = WsClient(ws)
        await client.send(f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>")
        error = await client.expect(r"stream:error")
        assert "policy-violation" in error
        await client.expect(r"^<close ")
        await ws.close()
        # Not XML at all: a stream error for this connection only.
        ws = await http.ws_connect(url(web_server, "/xmpp-websocket", "ws"), protocols=("xmpp",))
        client = WsClient(ws)
        await client.open()
        await client.send("<message><unclosed></message>")
        assert "not-well-formed" in await client.expect(r"stream:error")
        await ws.close()


class BoshClient:
    def __init__(self, http: aiohttp.ClientSession, endpoint: str) -> None:
        self.http = http
        self.endpoint = endpoint
        self.rid = 4242
        self.sid = ""

    async def post(self, inner: str = "", **attrs: str) -> str:
        self.rid += 1
        return await self.post_rid(self.rid, inner, **attrs)

    async def post_rid(self, rid: int, inner: str = "", **attrs: str) -> str:
        extra = "".join(f" {k.replace('_', ':')}='{v}'" for k, v in attrs.items())
        sid = f" sid='{self.sid}'" if self.sid else ""
        body = (
            f"<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'"
            f" rid='{rid}'{sid}{extra}>{inner}</body>"
        )
        async with self.http.post(self.endpoint, data=body) as response:
            assert response.status == 200
            return await response.text()

    async def until(self, pattern: str, timeout: float = 10) -> str:
        async with asyncio.timeout(timeout):
            while True:
                text = await self.post()
                if re.search(pattern, text, re.S):
                    return text


async def test_bosh_session_login_chat_replay_and_terminate(web_server: RunningServer) -> None:
    bob = await login(web_server, "bob@localhost/tcp", PASSWORD)
    bob.send_presence()
    async with aiohttp.ClientSession() as http:
        alice = BoshClient(http, url(web_server, "/http-bind"))
        created = await alice.post(to="localhost", wait="5", hold="1", xmpp_version="1.0")
        sid = re.search(r"sid='([^']+)'", created)
        assert sid is not None
        alice.sid = sid.group(1)
        assert "xmpp:version='1.0'" in created
        assert "PLAIN" in created
        assert "<stream:features" in created
        assert "success" in await alice.post(plain("alice"))
        restarted = await alice.post(to="localhost", xmpp_restart="true")
        assert "urn:ietf:params:xml:ns:xmpp-bind" in restarted
        bound = await alice.post(
            "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:"
            "ns:xmpp-bind'><resource>bosh</resource></bind></iq>"
        )
        assert "alice@localhost/bosh" in bound

        # A repeated rid gets the very same answer (XEP-0124 §14.3).
        assert await alice.post_rid(alice.rid) == bound

        got = asyncio.ensure_future(bob.wait_until("message", timeout=5))
        await alice.post(
            "<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat'>"
            "<body>hello over BOSH</body></message>"
        )
        assert (await got)["body"] == "hello over BOSH"
        bob.send_message(mto="alice@localhost/bosh", mbody="hello, long poller", mtype="chat")
        await alice.until("hello, long poller")

        ended = await alice.post(type="terminate")
        assert "type='terminate'" in ended
        assert "item-not-found" in await alice.post()  # the session is gone
    await close(bob)


async def test_bosh_refuses_unknown_sessions_and_out_of_window_rids(
    web_server: RunningServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        stranger = BoshClient(http, url(web_server, "/http-bind"))
        stranger.sid = "no-such-session"
        assert "item-not-found" in await stranger.post()
        client = BoshClient(http, url(web_server, "/http-bind"))
        created = await client.post(to="localhost", wait="5", xmpp_version="1.0")
        sid = re.search(r"sid='([^']+)'", created)
        assert sid is not None
        client.sid = sid.group(1)
        assert "item-not-found" in await client.post_rid(client.rid + 50)
        unknown = BoshClient(http, url(web_server, "/http-bind"))
        refused = await unknown.post(to="nowhere.example", wait="5", xmpp_version="1.0")
        assert "type='terminate'" in refused
        assert "host-unknown" in refused


async def test_discovery_and_chat_page(web_server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(url(web_server, "/.well-known/host-meta")) as response:
            xrd = await response.text()
            assert response.headers["Content-Type"].startswith("application/xrd+xml")
        ws = f"ws://127.0.0.1:{web_server.ports['http']}/xmpp-websocket"
        assert f'href="{ws}"' in xrd
        assert "urn:xmpp:alt-connections:xbosh" in xrd
        async with http.get(url(web_server, "/.well-known/host-meta.json")) as response:
            links = {
                link["rel"]: link["href"] for link in json.loads(await response.text())["links"]
            }
        assert links["urn:xmpp:alt-connections:websocket"] == ws
        async with http.get(url(web_server, "/chat")) as response:
            assert response.status == 200
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.options(
            url(web_server, "/http-bind"),
            headers={
                "Origin": "https://elsewhere.example",
                "Access-Control-Request-Method": "POST",
            },
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in response.headers


async def test_websocket_clients_are_sent_elsewhere_when_configured(
    config_factory: Callable[..., ServerConfig],
) -> None:
    listeners = [{"kind": "http", "host": "127.0.0.1", "port": 0}]
    moved = "wss://new.example/xmpp-websocket"
    running = await start(
        config_factory(listeners=listeners, http={"websocket_see_other_uri": moved})
    )
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url(running, "/xmpp-websocket", "ws"), protocols=("xmpp",))
            await ws.send_str(f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>")
            message = await ws.receive()
            assert f'see-other-uri="{moved}"' in message.data
            assert message.data.startswith("<close ")
            await ws.close()
    finally:
        await running.stop()


async def test_bosh_pause_answers_and_keeps_the_session(web_server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        client = BoshClient(http, url(web_server, "/http-bind"))
        created = await client.post(to="localhost", wait="5", xmpp_version="1.0")
        sid = re.search(r"sid='([^']+)'", created)
        assert sid is not None
        assert "maxpause=" in created
        client.sid = sid.group(1)
        paused = await client.post(pause="90")
        assert "type='terminate'" not in paused
        assert "success" in await client.post(plain("alice"))  # still the same session


async def test_websocket_over_https_with_the_domain_certificate(
    config_factory: Callable[..., ServerConfig],
) -> None:
    listeners = [{"kind": "https", "host": "127.0.0.1", "port": 0}]
    running = await start(config_factory(listeners=listeners))
    try:
        await running.server.accounts.create(JID.parse("alice@localhost"), PASSWORD)
        trust = ssl.create_default_context(cafile=str(running.certificates["localhost"]))
        endpoint = f"wss://127.0.0.1:{running.ports['https']}/xmpp-websocket"
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                endpoint, protocols=("xmpp",), ssl=trust, server_hostname="localhost"
            )
            client = WsClient(ws)
            await client.login("alice")  # encrypted by TLS itself: PLAIN is offered
            await client.send(f"<close xmlns='{FRAMING}'/>")
            await client.expect(r"^<close ")
            await ws.close()
            discovery = f"https://127.0.0.1:{running.ports['https']}/.well-known/host-meta.json"
            async with http.get(discovery, ssl=trust, server_hostname="localhost") as response:
                links = json.loads(await response.text())["links"]
        assert any(link["href"].startswith("wss://") for link in links)
    finally:
        await running.stop()


async def test_bosh_session_nobody_polls_ends(web_server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        client = BoshClient(http, url(web_server, "/http-bind"))
        created = await client.post(to="localhost", wait="5", xmpp_version="1.0")
        sid = re.search(r"sid='([^']+)'", created)
        assert sid is not None
        client.sid = sid.group(1)
        assert "success" in await client.post(plain("alice"))
        http_listener = next(x for x in web_server.listeners if isinstance(x, HttpListener))
        sessions = http_listener.bosh
        session = sessions.sessions[client.sid]
        session.last_seen -= 3600  # as if an hour had passed
        assert session.task is not None
        await asyncio.wait_for(session.task, 5)  # the reaper ends it like a lost connection
        assert client.sid not in sessions.sessions
        assert "item-not-found" in await client.post()


async def test_metrics_for_monitoring_from_allowed_addresses_only(
    web_server: RunningServer, config_factory: Callable[..., ServerConfig]
) -> None:
    bob = await login(web_server, "bob@localhost/tcp", PASSWORD, plugins=("xep_0045",))
    try:
        bob.send_presence()
        await bob.plugin["xep_0045"].join_muc_wait("metrics@conference.localhost", "Bob", timeout=5)
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        async with aiohttp.ClientSession() as http, http.get(url(web_server, "/metrics")) as got:
            assert got.status == 200
            assert got.headers["Content-Type"].startswith("application/openmetrics-text")
            text = await got.text()
    finally:
        await close(bob)
    assert 'heron_c2s_sessions{state="active"} 1' in text
    assert re.search(r'heron_stanzas_routed_total\{kind="iq"\} [1-9]', text)
    assert 'heron_logins_total{result="ok"} 1' in text
    assert 'heron_muc{service="conference.localhost",what="rooms"} 1' in text
    assert text.endswith("# EOF\n")

    closed = await start(
        config_factory(
            listeners=[{"kind": "http", "host": "127.0.0.1", "port": 0}],
            http={"metrics_allow": []},
        )
    )
    try:
        async with aiohttp.ClientSession() as http, http.get(url(closed, "/metrics")) as got:
            assert got.status == 403
    finally:
        await closed.stop()
