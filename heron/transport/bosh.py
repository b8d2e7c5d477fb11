"""BOSH (XEP-0124) carrying XMPP (XEP-0206) into the same client stream engine as TCP.

Each session is one engine fed from a queue: a request's <body/> children go to the engine in
'rid' order, its output waits for the next held request. A request is held until there is
output, until 'wait' seconds pass, or until a newer request needs its place ('hold'). The
last responses are kept so a client may repeat a request ('rid' replay, XEP-0124 §14.3);
a session nobody polls for 'inactivity' seconds ends (and, with stream management, waits to
be resumed like a dropped TCP connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from heron import ns
from heron.stanza import StreamCondition, StreamError
from heron.stream.base import TlsInfo
from heron.stream.c2s import C2SStream, Framing
from heron.transport.runner import Admission
from heron.transport.tcp import run_client
from heron.xmlstream import Element, serialize, stream_header
from heron.xmlstream.serializer import escape_attr
from heron.xmlstream.stored import parse_stored

if TYPE_CHECKING:
    from heron.transport.http import HttpListener

REQUESTS: Final = 2  # requests a client may have open at once
HOLD: Final = 1
WINDOW: Final = REQUESTS  # how far ahead of the last rid a request may be
LISTENER: Final = web.AppKey["HttpListener"]("heron.listener")


class BoshFraming(Framing):
    """Inside <body/>: the header and footer are <body/> attributes, elements stand alone."""

    def __init__(self, session: BoshSession) -> None:
        self.session = session

    def header(self, from_: str | None, stream_id: str) -> str:
        self.session.stream_id = stream_id
        self.session.from_ = from_ or ""
        return ""

    def element(self, element: Element) -> str:
        if element.ns == ns.STREAM:
            return serialize(element, ns.CLIENT)  # <stream:features/>: <body/> declares stream
        return serialize(element)

    def footer(self) -> str:
        self.session.terminated = True
        self.session.output.set()
        return ""


class BoshLink:
    def __init__(self, session: BoshSession, peer: str) -> None:
        self.session = session
        self.peer = peer
        self.closed = False

    def write(self, data: bytes) -> None:
        if data and not self.closed:
            self.session.outbox.append(data.decode())
            self.session.pending += len(data)
            self.session.output.set()

    def buffered(self) -> int:
        return self.session.pending

    async def start_tls(self, domain: str) -> TlsInfo:
        raise ConnectionError("STARTTLS is not possible over BOSH (use https)")

    def close(self) -> None:
        self.closed = True
        self.session.terminated = True
        self.session.inbox.put_nowait(b"")
        self.session.output.set()


@dataclass(eq=False)
class BoshSession:
    sid: str
    wait: int
    peer: str
    next_rid: int
    stream_id: str = ""
    from_: str = ""
    terminated: bool = False
    inbox: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    outbox: list[str] = field(default_factory=list)
    pending: int = 0
    output: asyncio.Event = field(default_factory=asyncio.Event)
    held: deque[asyncio.Future[None]] = field(default_factory=deque)
    answered: OrderedDict[int, str] = field(default_factory=OrderedDict)  # rid → response
    early: dict[int, asyncio.Future[None]] = field(default_factory=dict)  # ahead of order
    last_seen: float = field(default_factory=time.monotonic)
    allowed_idle: float = 0.0  # beyond the inactivity limit: a pause the client asked for
    stream: C2SStream | None = None
    task: asyncio.Task[None] | None = None

    async def read(self, n: int = -1) -> bytes:
        """The engine's reader: what requests brought, in rid order; b"" at the end."""
        return await self.inbox.get()

    def take_output(self) -> str:
        out = "".join(self.outbox)
        self.outbox.clear()
        self.pending = 0
        self.output.clear()
        return out


def _body(attrs: dict[str, str], inner: str = "", *, xmpp: dict[str, str] | None = None) -> str:
    """A <body/> declaring the prefixes its content uses: stream: for features and errors,
    xmpp: for XEP-0206's attributes."""
    parts = [f"<body xmlns='{ns.HTTPBIND}' xmlns:xmpp='{ns.XBOSH}' xmlns:stream='{ns.STREAM}'"]
    parts.extend(f" {name}='{escape_attr(value)}'" for name, value in attrs.items())
    parts.extend(f" xmpp:{name}='{escape_attr(value)}'" for name, value in (xmpp or {}).items())
    parts.append(f">{inner}</body>" if inner else "/>")
    return "".join(parts)


def _terminate(condition: str) -> web.Response:
    return _respond(_body({"type": "terminate", "condition": condition}))


def _respond(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/xml", charset="utf-8")


class Bosh:
    """The BOSH endpoint of every HTTP listener (sessions outlive the request that made
    them, and may be continued through another listener)."""

    def __init__(self, max_wait_s: int, inactivity_s: int) -> None:
        self.max_wait_s = max_wait_s
        self.inactivity_s = inactivity_s
        self.max_pause_s = max(inactivity_s, 120)
        self.sessions: dict[str, BoshSession] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            if session.stream is not None:
                session.stream.close(StreamError(StreamCondition.SYSTEM_SHUTDOWN))
            session.inbox.put_nowait(b"")
        tasks = [s.task for s in self.sessions.values() if s.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._reaper is not None:
            self._reaper.cancel()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        listener = request.app[LISTENER]
        if request.method == "GET":
            return web.Response(text="Heron BOSH endpoint (XEP-0206): POST <body/> here.\n")
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "OPTIONS"])
        if not listener.origin_allowed(request):
            raise web.HTTPForbidden(text="origin not allowed")
        text = await request.text()
        limits = listener.server.limits
        body = parse_stored(text, ("body", ns.HTTPBIND), limits)
        if body is None:
            return web.Response(status=400, text="expected one <body/> of XEP-0124\n")
        sid = body.attrs.get("sid")
        try:
            rid = int(body.attrs.get("rid", ""))
        except ValueError:
            return _terminate("bad-request")
        if sid is None:
            return await self._create(listener, request, body, rid)
        session = self.sessions.get(sid)
        if session is None:
            return _terminate("item-not-found")
        return await self._request(session, body, rid)

    # --- session creation (XEP-0124 §7, XEP-0206 §4) -----------------------------------
    async def _create(
        self, listener: HttpListener, request: web.Request, body: Element, rid: int
    ) -> web.StreamResponse:
        to = body.attrs.get("to", "")
        peer, secure = listener.client(request)
        if not secure and listener.server.require_tls:
            return _terminate("policy-violation")  # use https (or a TLS proxy)
        refusal = listener.guard.admit(peer, time.monotonic())
        if refusal is not None:
            return _terminate("policy-violation")
        try:
            wait = min(max(int(body.attrs.get("wait", "60")), 1), self.max_wait_s)
        except ValueError:
            wait = self.max_wait_s
        session = BoshSession(secrets.token_urlsafe(18), wait, peer, rid + 1)
        link = BoshLink(session, peer)
        stream = C2SStream(listener.server, link, is_tls=secure, framing=BoshFraming(session))
        session.stream = stream
        stream.log.info("connected (BOSH%s)", "" if secure else ", unencrypted")
        self.sessions[session.sid] = session
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())
        admission = Admission(listener.guard, peer)
        session.task = asyncio.create_task(self._run(listener, session, admission))
        session.inbox.put_nowait(self._header(body, to))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.output.wait(), 10)
        if session.terminated:  # refused at the header (unknown host...): say why
            self.sessions.pop(session.sid, None)
            attrs = {"type": "terminate", "condition": "remote-stream-error"}
            return _respond(_body(attrs, session.take_output()))
        attrs = {
            "sid": session.sid,
            "wait": str(wait),
            "inactivity": str(self.inactivity_s),
            "maxpause": str(self.max_pause_s),
            "polling": "1",
            "requests": str(REQUESTS),
            "hold": str(HOLD),
            "ack": str(rid),
            "ver": "1.11",
            "from": session.from_ or to,
            "authid": session.stream_id,
        }
        xmpp = {"version": "1.0", "restartlogic": "true"}
        response = _body(attrs, session.take_output(), xmpp=xmpp)
        session.answered[rid] = response
        return _respond(response)

    @staticmethod
    def _header(body: Element, to: str) -> bytes:
        return stream_header(
            default_ns=ns.CLIENT,
            from_=None,
            to=to,
            stream_id=None,
            version=body.attrs.get(f"{{{ns.XBOSH}}}version", "1.0"),
            lang=body.attrs.get(ns.XML_LANG),
        ).encode()

    async def _run(
        self, listener: HttpListener, session: BoshSession, admission: Admission
    ) -> None:
        assert session.stream is not None
        try:
            await run_client(listener, session.stream, session, admission)
        finally:
            admission.release()
            session.terminated = True
            session.output.set()
            for future in session.held:
                if not future.done():
                    future.set_result(None)

    # --- requests (XEP-0124 §9-§14) ----------------------------------------------------
    async def _request(self, session: BoshSession, body: Element, rid: int) -> web.StreamResponse:
        session.last_seen = time.monotonic()
        session.allowed_idle = 0.0
        if rid in session.answered:  # §14.3: a repeated request gets the same answer
            return _respond(session.answered[rid])
        if rid < session.next_rid or rid > session.next_rid + WINDOW:
            await self._end(session)
            return _terminate("item-not-found")
        if rid > session.next_rid:  # §14.2: wait for the missing ones, briefly
            future = session.early.setdefault(rid, asyncio.get_running_loop().create_future())
            try:
                await asyncio.wait_for(asyncio.shield(future), session.wait)
            except TimeoutError:
                await self._end(session)
                return _terminate("item-not-found")
        session.next_rid = rid + 1
        follower = session.early.pop(rid + 1, None)
        if follower is not None and not follower.done():
            follower.set_result(None)
        if body.attrs.get("type") == "terminate":
            for child in self._children(body):
                session.inbox.put_nowait(child)
            await self._end(session)
            return self._remember(session, rid, _body({"type": "terminate"}))
        if "pause" in body.attrs:  # §10: the client will be away; answer what is held
            try:
                pause = min(max(int(body.attrs["pause"]), 0), self.max_pause_s)
            except ValueError:
                return _terminate("bad-request")
            session.allowed_idle = pause
            for held in list(session.held):
                if not held.done():
                    held.set_result(None)
            return self._remember(session, rid, _body({}, session.take_output()))
        if body.attrs.get(f"{{{ns.XBOSH}}}restart") == "true":
            session.inbox.put_nowait(self._header(body, body.attrs.get("to", "")))
        for child in self._children(body):
            session.inbox.put_nowait(child)
        # Only `hold` requests wait at a time: a newer one releases the oldest.
        while len(session.held) >= HOLD:
            oldest = session.held.popleft()
            if not oldest.done():
                oldest.set_result(None)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.held.append(mine)
        waiter: asyncio.Future[Any] = asyncio.ensure_future(session.output.wait())
        either: set[asyncio.Future[Any]] = {waiter, mine}
        try:
            await asyncio.wait(either, timeout=session.wait, return_when="FIRST_COMPLETED")
        finally:
            waiter.cancel()
            with contextlib.suppress(ValueError):
                session.held.remove(mine)
        if not session.outbox:
            await asyncio.sleep(0)  # let output the engine is about to write join this answer
        out = session.take_output()
        if session.terminated:
            self.sessions.pop(session.sid, None)
            return self._remember(session, rid, _body({"type": "terminate"}, out))
        return self._remember(session, rid, _body({}, out))

    @staticmethod
    def _children(body: Element) -> list[bytes]:
        out = []
        for child in body.elements():
            if child.ns == ns.HTTPBIND:  # an unqualified stanza: it means jabber:client
                child = child.renamespaced(ns.HTTPBIND, ns.CLIENT)
            out.append(serialize(child, ns.CLIENT).encode())
        return out

    @staticmethod
    def _remember(session: BoshSession, rid: int, text: str) -> web.Response:
        session.answered[rid] = text
        while len(session.answered) > REQUESTS + 1:
            session.answered.popitem(last=False)
        return _respond(text)

    async def _end(self, session: BoshSession) -> None:
        self.sessions.pop(session.sid, None)
        if session.stream is not None and not session.stream.is_closed:
            session.stream.close_reason = session.stream.close_reason or "terminated by client"
            session.stream.close()
        session.inbox.put_nowait(b"")

    async def _reap(self) -> None:
        """Sessions nobody polls end as a dropped connection would (stream management may
        keep them to resume)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                idle = now - session.last_seen
                if not session.held and idle > max(self.inactivity_s, session.allowed_idle):
                    self.sessions.pop(session.sid, None)
                    if session.stream is not None:
                        session.stream.close_reason = "BOSH inactivity"
                    session.inbox.put_nowait(b"")
