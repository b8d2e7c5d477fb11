"""The HTTP side on aiohttp: XMPP over WebSocket (RFC 7395) and BOSH (XEP-0124/0206) into the
same client stream engine as TCP, connection discovery (XEP-0156), the browser chat page,
and the routes modules add (HTTP File Upload).

Security: a request counts as encrypted when it came over TLS, through a trusted proxy that
says so (X-Forwarded-Proto), or from loopback without any proxy header (the traffic never
left the machine, as Prosody's secure_interfaces assume). Unencrypted sessions are refused
before login while TLS is required. Every response carries the usual hardening headers;
cross-origin use follows `http.cors_origins` ("*": any origin, never with credentials).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from aiohttp import web

from heron import ns
from heron.config import HttpConfig, LimitsConfig
from heron.ratelimit import ConnectionGuard
from heron.stanza import StreamCondition, StreamError
from heron.stream.c2s import C2SStream
from heron.transport.bosh import LISTENER
from heron.transport.runner import Admission, Connections
from heron.transport.tcp import run_client
from heron.transport.websocket import WebSocketFraming, WebSocketLink, WebSocketReader
from heron.xmlstream import Element, serialize

if TYPE_CHECKING:
    from heron.core.server import Server
    from heron.transport.bosh import Bosh

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROJECT_WEB: Final = Path(__file__).resolve().parents[2] / "web"
CONVERSE_DIST: Final = Path("node_modules") / "converse.js" / "dist"
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CHAT_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https:; media-src 'self' blob: https:; "
    "connect-src 'self' ws: wss: https:; font-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


class HttpListener:
    """One HTTP or HTTPS port. Also the ``ClientRunner`` of the client streams it carries."""

    def __init__(
        self,
        server: Server,
        config: HttpConfig,
        *,
        tls: ssl.SSLContext | None,
        policy: LimitsConfig,
        guard: ConnectionGuard,
        bosh: Bosh,
        reuse_port: bool = False,
    ) -> None:
        self.host = server
        self.server = server
        self.config = config
        self.tls = tls
        self.policy = policy
        self.guard = guard
        self.bosh = bosh
        self.connections: Connections[C2SStream] = Connections()
        self.reuse_port = reuse_port
        self.runner: web.AppRunner | None = None
        self.web_dir = config.web_dir or PROJECT_WEB

    # --- lifecycle --------------------------------------------------------------------
    async def start(self, address: str, port: int) -> int:
        app = web.Application(middlewares=[self._headers], client_max_size=1024**2)
        app[LISTENER] = self
        c = self.config
        app.router.add_get(c.websocket_path, self.websocket)
        app.router.add_route("*", c.bosh_path, self.bosh.handle)
        app.router.add_get("/.well-known/host-meta", self.host_meta)
        app.router.add_get("/.well-known/host-meta.json", self.host_meta_json)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get(c.chat_path, self.chat_page)
        app.router.add_get(f"{c.chat_path}/init.js", self.chat_script)
        dist = self.web_dir / CONVERSE_DIST
        if dist.is_dir():
            app.router.add_static(f"{c.chat_path}/dist", dist, follow_symlinks=False)
        for method, path, handler in self.server.http_routes:
            app.router.add_route(method, path, handler)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(
            self.runner,
            address,
            port,
            ssl_context=self.tls,
            backlog=1024,
            reuse_port=self.reuse_port or None,
        )
        await site.start()
        bound = self.runner.addresses
        return int(bound[0][1]) if bound else port

    async def stop(self) -> None:
        await self.bosh.stop()
        await self.connections.close_all()
        if self.runner is not None:
            await self.runner.cleanup()

    # --- who is asking ----------------------------------------------------------------
    def client(self, request: web.Request) -> tuple[str, bool]:
        """The client's address and whether its traffic is encrypted (see the module doc)."""
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        if peer in self.config.trusted_proxies:
            if forwarded:
                peer = forwarded.split(",")[-1].strip() or peer
            proto = request.headers.get("X-Forwarded-Proto", "").lower()
            return peer, request.secure or proto == "https"
        secure = request.secure or (_is_loopback(peer) and forwarded is None)
        return peer, secure

    def origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        allowed = self.config.cors_origins
        return origin is None or "*" in allowed or origin in allowed

    def base_url(self, request: web.Request) -> str:
        if self.config.public_url:
            return self.config.public_url
        _peer, secure = self.client(request)
        scheme = "https" if request.secure or (secure and not _is_loopback(_peer)) else "http"
        return f"{scheme}://{request.host}"

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if not response.prepared:
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            origin = request.headers.get("Origin")
            if origin and self.origin_allowed(request):
                allowed = self.config.cors_origins
                response.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
                response.headers["Access-Control-Max-Age"] = "86400"
                if "*" not in allowed:
                    response.headers["Vary"] = "Origin"
        return response

    # --- WebSocket (RFC 7395) ---------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            raise web.HTTPForbidden(text="origin not allowed")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if "xmpp" not in offered:
            raise web.HTTPBadRequest(text="the 'xmpp' WebSocket subprotocol is required")
        peer, secure = self.client(request)
        refusal = self.guard.admit(peer, time.monotonic())
        if refusal is not None:
            raise web.HTTPServiceUnavailable(text=refusal)
        admission = Admission(self.guard, peer)
        try:
            return await self._websocket(request, peer, secure, admission)
        finally:
            admission.release()

    async def _websocket(
        self, request: web.Request, peer: str, secure: bool, admission: Admission
    ) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            protocols=("xmpp",), max_msg_size=self.server.limits.max_stanza_bytes + 4096
        )
        await ws.prepare(request)
        if self.config.websocket_see_other_uri:  # §3.6.1: the service lives elsewhere now
            await ws.receive()  # the client's <open/>
            moved = Element(
                "close", ns.WS_FRAMING, {"see-other-uri": self.config.websocket_see_other_uri}
            )
            await ws.send_str(serialize(moved))
            await ws.close()
            return ws
        link = WebSocketLink(ws, peer)
        framing = WebSocketFraming()
        stream = C2SStream(self.server, link, is_tls=secure, framing=framing)
        stream.log.info("connected (WebSocket%s)", "" if secure else ", unencrypted")
        if not secure and self.server.require_tls:
            stream.close(StreamError(StreamCondition.POLICY_VIOLATION, "use wss:// (TLS)"))
            await link.finished()
            return ws
        reader = WebSocketReader(ws, self.server.pre_auth_limits)
        await run_client(self, stream, reader, admission)
        await link.finished()
        return ws

    # --- discovery (XEP-0156) ---------------------------------------------------------
    def _endpoints(self, request: web.Request) -> tuple[str, str]:
        base = self.base_url(request)
        ws_base = "wss" + base[5:] if base.startswith("https") else "ws" + base[4:]
        return base + self.config.bosh_path, ws_base + self.config.websocket_path

    async def host_meta(self, request: web.Request) -> web.StreamResponse:
        bosh, websocket = self._endpoints(request)
        xrd = Element("XRD", "http://docs.oasis-open.org/ns/xri/xrd-1.0")
        for rel, href in ((ns.XBOSH_REL, bosh), (ns.WEBSOCKET_REL, websocket)):
            xrd.add("Link", xrd.ns, {"rel": rel, "href": href})
        return web.Response(
            text="<?xml version='1.0' encoding='utf-8'?>\n" + serialize(xrd),
            content_type="application/xrd+xml",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    async def host_meta_json(self, request: web.Request) -> web.StreamResponse:
        bosh, websocket = self._endpoints(request)
        links = [
            {"rel": ns.XBOSH_REL, "href": bosh},
            {"rel": ns.WEBSOCKET_REL, "href": websocket},
        ]
        return web.Response(
            text=json.dumps({"links": links}),
            content_type="application/json",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    # --- operations -------------------------------------------------------------------
    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """OpenMetrics for monitoring, to the addresses in ``http.metrics_allow`` only."""
        peer, _secure = self.client(request)
        if peer not in self.config.metrics_allow:
            raise web.HTTPForbidden(text="metrics are not public\n")
        return web.Response(
            text=self.server.metrics.render(),
            headers={"Content-Type": "application/openmetrics-text; version=1.0.0; charset=utf-8"},
        )

    # --- the chat page ----------------------------------------------------------------
    async def chat_page(self, request: web.Request) -> web.StreamResponse:
        chat = self.config.chat_path
        if not (self.web_dir / CONVERSE_DIST / "converse.min.js").is_file():
            body = (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                "<title>Heron chat</title></head><body><h1>Heron chat</h1>"
                "<p>The web client is not installed. With Node.js and npm present, run "
                "<code>make web</code> in Heron's directory (or set <code>http.web_dir</code> "
                "to a directory where <code>npm install converse.js</code> was run), then "
                "reload this page.</p></body></html>"
            )
        else:
            body = (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>Heron chat</title><link rel='stylesheet' href='{chat}/dist/"
                f"converse.min.css'><script type='module' src='{chat}/dist/converse.min.js'>"
                f"</script></head><body class='converse-fullscreen'>"
                f"<script type='module' src='{chat}/init.js'></script></body></html>"
            )
        return web.Response(
            text=body, content_type="text/html", headers={"Content-Security-Policy": CHAT_CSP}
        )

    async def chat_script(self, request: web.Request) -> web.StreamResponse:
        """Converse.js set up for this server: its WebSocket, its first domain."""
        _bosh, websocket = self._endpoints(request)
        domain = self.server.config.hosts[0].domain
        options = {
            "websocket_url": websocket,
            "default_domain": domain,
            "view_mode": "fullscreen",
            "discover_connection_methods": False,
            "allow_registration": False,
            "assets_path": f"{self.config.chat_path}/dist/",
            "show_client_info": False,
        }
        script = (
            "// Generated by Heron: Converse.js connected to this server over WebSocket.\n"
            "(function () {\n"
            f"  var options = {json.dumps(options)};\n"
            "  var url = new URL(options.websocket_url);\n"
            "  url.host = window.location.host;\n"
            "  url.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';\n"
            "  options.websocket_url = url.toString();\n"
            "  converse.initialize(options);\n"
            "})();\n"
        )
        return web.Response(text=script, content_type="application/javascript")
